"""What the SIP edge adds to the caller's audio, from the wire to the call's stream (bench/sip_calls.py).

The edge's frame trace (sipedge/frame_trace.py) stamps each 20 ms frame of the caller's audio
when PJSIP's media clock hands it to Python (`heard`) and once its send on the stream has returned
(`sent`). Each caller RTP packet into the edge, read off `lo` with the kernel's time, is looked for
in the audio sent, anywhere in it rather than frame by frame: a packet's 160 samples need not
start a frame (they did not while PJSIP's packet loss concealment held 5 ms of each back). A packet whose samples occur
more than once (silence) is left out.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path

from sipedge.playout import SAMPLE_BYTES
from tests.sip.loopback_rtp import RTP_HEADER, decode, rtp_payload
from tests.sip.loopback_udp import Datagram


@dataclass(frozen=True)
class Stamp:
    at: float  # epoch seconds
    stage: str  # "heard" or "sent"
    pcm: bytes


@dataclass
class EdgeLatency:
    """Seconds per caller packet found in the stream's audio; `packets` counts the caller's packets."""

    packets: int = 0
    whole: list[float] = field(default_factory=list)  # packet in → the send that completed its samples
    first: list[float] = field(default_factory=list)  # packet in → the send that carried its first sample
    pjsip: list[float] = field(default_factory=list)  # packet in → PJSIP handed the completing frame over
    python: list[float] = field(default_factory=list)  # that hand-over → its send returned

    def extend(self, other: EdgeLatency) -> None:
        self.packets += other.packets
        for mine, theirs in ((self.whole, other.whole), (self.first, other.first), (self.pjsip, other.pjsip),
                             (self.python, other.python)):
            mine.extend(theirs)


def read_trace(path: Path, since: float, until: float) -> list[Stamp]:
    """The trace's stamps between `since` and `until` (epoch seconds), in the order written."""
    stamps = []
    for line in path.read_text().splitlines():
        nanoseconds, stage, pcm = line.split()
        at = int(nanoseconds) / 1e9
        if since <= at <= until:
            stamps.append(Stamp(at, stage, bytes.fromhex(pcm)))
    return stamps


def edge_latency(datagrams: list[Datagram], media_port: int, sip_port: int, stamps: list[Stamp]) -> EdgeLatency:
    """The caller's packets are those from SIPp's `media_port` to the edge (not to its SIP port)."""
    sent = [stamp for stamp in stamps if stamp.stage == "sent"]
    heard_counts = Counter(stamp.pcm for stamp in stamps if stamp.stage == "heard")
    heard = {stamp.pcm: stamp.at for stamp in stamps if stamp.stage == "heard" and heard_counts[stamp.pcm] == 1}
    audio = b"".join(stamp.pcm for stamp in sent)
    frame_ends = list(accumulate(len(stamp.pcm) for stamp in sent))
    latency = EdgeLatency()
    for datagram in datagrams:
        if datagram.source_port != media_port or datagram.destination_port == sip_port \
                or len(datagram.payload) <= RTP_HEADER:
            continue
        latency.packets += 1
        pcm = decode(rtp_payload(datagram.payload), "ulaw")
        found = _only(audio, pcm)
        if found is None:
            continue
        completing = sent[bisect_left(frame_ends, found + len(pcm))]
        latency.whole.append(completing.at - datagram.at)
        latency.first.append(sent[bisect_right(frame_ends, found)].at - datagram.at)
        if (handed := heard.get(completing.pcm)) is not None:
            latency.pjsip.append(handed - datagram.at)
            latency.python.append(completing.at - handed)
    return latency


def _only(audio: bytes, pcm: bytes) -> int | None:
    """Where `pcm` starts in `audio` (on a sample), if it occurs there exactly once."""
    found = audio.find(pcm)
    while found >= 0 and found % SAMPLE_BYTES:
        found = audio.find(pcm, found + 1)
    if found < 0 or audio.find(pcm, found + SAMPLE_BYTES) >= 0:
        return None
    return found
