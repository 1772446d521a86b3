"""What bench/transfer_times.py reads off `lo` for one handed-over call, and its arithmetic.

Each transfer is a set of moments, epoch seconds: `asked` (just before `POST /sessions/{id}/transfer`
was sent) and `answered` (its answer back) on the bench's own clock; the rest are the kernel's stamps
of datagrams crossing `lo` (the same realtime clock, on the same host). A step is the time between two
moments; a moment the capture lacks leaves that step out for that transfer (counted as missing).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from bench.phone_calls import pct
from tests.sip.loopback_rtp import RTP_HEADER, decode, rtp_payload
from tests.sip.loopback_udp import Datagram
from tests.sip.test_warm_transfer import loudness, share_at

CALLER_HZ = 400  # the caller's tone: no note of the hold tones (523-1047 Hz) nor the briefing bot's voice (1400 Hz)
HEARD_RMS = 300.0  # as the warm transfer tests tell a tone from silence
TONE_SHARE = 0.5  # of a packet's energy within 60 Hz of the tone


@dataclass(frozen=True)
class Step:
    what: str
    start: str  # moment names
    end: str


@dataclass
class Transfer:
    moments: dict[str, float | None] = field(default_factory=dict)
    note: str = ""  # what else the bench saw of it, for its line

    def took(self, step: Step) -> float | None:
        start, end = self.moments.get(step.start), self.moments.get(step.end)
        return None if start is None or end is None else end - start


def first_sip(datagrams: Iterable[Datagram], start: bytes, *, after: float, to_port: int | None = None,
              from_port: int | None = None, holding: bytes = b"") -> float | None:
    """When the first SIP message whose first bytes are `start` (and which holds `holding`) crossed lo at or
    after `after`, to `to_port` or from `from_port` where given."""
    for datagram in datagrams:
        if (datagram.at >= after and datagram.payload.startswith(start) and holding in datagram.payload
                and (to_port is None or datagram.destination_port == to_port)
                and (from_port is None or datagram.source_port == from_port)):
            return datagram.at
    return None


def tone_times(datagrams: Iterable[Datagram], port: int, hz: float, *, after: float) -> list[float]:
    """When each μ-law RTP packet to `port` that is mostly a `hz` tone, and loud enough to hear, crossed lo at or
    after `after`."""
    times = []
    for datagram in datagrams:
        if datagram.destination_port != port or datagram.at < after or len(datagram.payload) <= RTP_HEADER:
            continue
        pcm = np.frombuffer(decode(rtp_payload(datagram.payload), "ulaw"), dtype=np.int16)
        if loudness(pcm) > HEARD_RMS and share_at(pcm, hz) > TONE_SHARE:
            times.append(datagram.at)
    return times


def first_tone(datagrams: Iterable[Datagram], port: int, hz: float, *, after: float) -> float | None:
    return next(iter(tone_times(datagrams, port, hz, after=after)), None)


def summary(values: list[float]) -> str:
    """p50 and p95 in ms (bench.phone_calls.pct's rank: the 95th of 5 is the largest)."""
    if not values:
        return "n/a"
    return f"p50 {pct(values, 0.5) * 1000:.0f} ms, p95 {pct(values, 0.95) * 1000:.0f} ms (N={len(values)})"


def table(steps: list[Step], transfers: list[Transfer]) -> list[str]:
    """A Markdown row per step: its p50 and p95 over the transfers that had both its moments, and how many
    lacked one."""
    rows = []
    for step in steps:
        took = [t.took(step) for t in transfers]
        values = [value for value in took if value is not None]
        missing = len(took) - len(values)
        rows.append(f"| {step.what} | {summary(values)} | {missing or ''} |")
    return rows
