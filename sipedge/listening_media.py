"""PJSIP's media tuned for a listener that is a bot, not a person: the caller's audio reaches the
call's stream as soon as its packet is in, rather than smoothed for a loudspeaker.

- No packet loss concealment on G.711: PJSIP's (WSOLA) holds back the last 5 ms of every packet
  to blend a concealed gap, so each packet's end rode the next 20 ms tick of the bridge. A lost
  packet is silence to the bot's speech recognition instead of an invented continuation.
- A jitter buffer of at most two packets (40 ms at the usual 20 ms): PJSIP's adaptive one keeps
  what a burst built up and sheds it a frame a second or so, so one late packet on a busy host held
  the call's audio back by 20–200 ms for seconds. Capped, a packet waits at most one packet's time;
  a later one costs the oldest 10 ms frame instead of a lasting delay.
A person's leg (a warm transfer) shares both: their phone has its own jitter buffer and concealment."""

from __future__ import annotations

from collections.abc import Iterable

import pjsua2 as pj

PACKETS_BUFFERED = 2


def cap_jitter_buffer(stream: pj.StreamInfo) -> None:
    """Before PJSUA creates a call's audio stream: its jitter buffer holds `PACKETS_BUFFERED` of the
    trunk's packets at most (their length is the ptime the trunk asked for, in 10 ms G.711 frames)."""
    setting, info = stream.audCodecParam.setting, stream.audCodecParam.info
    if stream.type == pj.PJMEDIA_TYPE_AUDIO and setting.frmPerPkt and info.frameLen:
        stream.jbMax = PACKETS_BUFFERED * setting.frmPerPkt * info.frameLen


def without_concealment(endpoint: pj.Endpoint, codecs: Iterable[str]) -> None:
    """Once PJSUA has started: the default parameters of `codecs` ("PCMU/8000"), which each call's stream
    takes when it is created."""
    wanted = set(codecs)
    for codec in endpoint.codecEnum2():
        if codec.codecId.rsplit("/", 1)[0] in wanted:
            param = endpoint.codecGetParam(codec.codecId)
            param.setting.plc = False
            endpoint.codecSetParam(codec.codecId, param)
