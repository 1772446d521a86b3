"""PJSIP's media tuned for a listener that is a bot, not a person: the caller's audio reaches the
call's stream soon after its packet is in, without giving up the audio a jittery trunk delivers late.

- A bounded prefetch: PJSIP's adaptive jitter buffer may grow its prefetch to 4/5 of its size (400 ms)
  and keeps what a burst built up, shedding it a frame a second or so: one late packet on a busy host
  held a call's audio back by 20-200 ms for seconds. Here the prefetch grows to four packets at most
  (80 ms at least), which covers 0-60 ms of jitter; on a steady trunk it stays at its least.
- Room for a burst: a trunk whose packets arrive late and then together fills the buffer past the
  prefetch. A buffer capped at two packets dropped them and played their gap as silence (14 % of the
  caller's audio at 0-60 ms jitter); this one keeps eight packets (160 ms at least).
Both floors are in milliseconds: the packet length PJSIP knows (`frmPerPkt`) is the ptime the trunk
asked the edge to send, and a trunk may send longer packets than that.
A person's leg (a transfer's call to a person) keeps PJSIP's own buffer: the bridge re-times their
audio into the caller's packets, so what is late there cannot be concealed by the caller's phone.
No packet loss concealment on G.711: PJSIP's (WSOLA) holds back the last 5 ms of every packet to blend
a concealed gap, so each packet's end rides the next 20 ms tick of the bridge (+20 ms on every packet,
measured with this buffer too). A lost packet is silence to the bot's speech recognition instead of an
invented continuation. PJSUA2 sets concealment per codec for the whole endpoint, not per call, so a
person's leg goes without it too."""

from __future__ import annotations

from collections.abc import Iterable

import pjsua2 as pj

PREFETCH_PACKETS, PREFETCH_FLOOR_MS = 4, 80
BURST_PACKETS, BURST_FLOOR_MS = 8, 160


def tune_jitter_buffer(stream: pj.StreamInfo) -> None:
    """Before PJSUA creates a bot's call's audio stream: a prefetch of four packets at most, room for eight
    (each at least its floor in milliseconds, whatever the ptime)."""
    setting, info = stream.audCodecParam.setting, stream.audCodecParam.info
    if stream.type != pj.PJMEDIA_TYPE_AUDIO or not info.frameLen:
        return
    packet_ms = max(1, setting.frmPerPkt) * info.frameLen
    stream.jbMaxPre = max(PREFETCH_PACKETS * packet_ms, PREFETCH_FLOOR_MS)
    stream.jbMax = max(BURST_PACKETS * packet_ms, BURST_FLOOR_MS)



def without_concealment(endpoint: pj.Endpoint, codecs: Iterable[str]) -> None:
    """Once PJSUA has started: the default parameters of `codecs` ("PCMU/8000"), which each call's stream
    takes when it is created."""
    wanted = set(codecs)
    for codec in endpoint.codecEnum2():
        if codec.codecId.rsplit("/", 1)[0] in wanted:
            param = endpoint.codecGetParam(codec.codecId)
            param.setting.plc = False
            endpoint.codecSetParam(codec.codecId, param)
