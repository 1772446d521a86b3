"""What bench/sip_soak.py counts: each call as SIPp's `-trace_logs` lines tell it (bench/sip_soak_call.xml
logs its INVITE, its answer with the edge's RTP port, and the answer to its own BYE), the sampled
echo checks read off loopback, and the table of it all, one row a minute.

A call is lost when it was not answered, answered later than ANSWER_BOUND_SECONDS after its INVITE,
did not end by its own BYE (the edge or SIPp ended it first, or its BYE went unanswered), or was
caught silent by an echo check: it spoke through a whole window and heard nothing back."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.sip.loopback_rtp import RTP_HEADER, decode, rtp_payload
from tests.sip.loopback_udp import Datagram
from tests.support.audio import BOT_AUDIO_RMS, rms

ANSWER_BOUND_SECONDS = 10.0  # a caller hears ringing for two or three rings at most
MINUTE = 60.0
SPOKE_PACKETS = 150  # 3 s of 20 ms frames into the edge within one echo window: the call was talking
SETTLED_SECONDS = 1.0  # answered this long before a window, its echo flows through all of it
PCMU = 0


@dataclass
class Call:
    number: int
    invited: float  # epoch seconds
    edge_port: int | None = None  # the edge's RTP port for it, from its answer's SDP
    answered: float | None = None
    ended: float | None = None  # when its own BYE was answered
    silent: bool = False  # an echo check heard nothing back while it spoke

    @property
    def late(self) -> bool:
        return self.answered is not None and self.answered - self.invited > ANSWER_BOUND_SECONDS

    @property
    def lost(self) -> bool:
        return self.answered is None or self.late or self.ended is None or self.silent

    def up_seconds(self, start: float, end: float) -> float:
        """How long it was up within [start, end): answer to its own BYE (or 60 s after its answer)."""
        if self.answered is None:
            return 0.0
        over = self.ended if self.ended is not None else self.answered + MINUTE
        return max(0.0, min(end, over) - max(start, self.answered))


def read_calls(log: Path, clock_zero: float) -> dict[int, Call]:
    """The calls in SIPp's log file; SIPp's clock is milliseconds since `clock_zero` (epoch seconds)."""
    calls: dict[int, Call] = {}
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        parts = line.split()
        if len(parts) < 3 or not parts[1].isdigit():
            continue
        number, at = int(parts[1]), clock_zero + int(parts[-1]) / 1000
        if parts[0] == "invite":
            calls[number] = Call(number, at)
        elif parts[0] == "answered" and number in calls:
            calls[number].answered = at
            calls[number].edge_port = int(parts[2]) if parts[2].isdigit() else None
        elif parts[0] == "ended" and number in calls:
            calls[number].ended = at
    return calls


@dataclass
class EchoCheck:
    at: float  # the window's start, epoch seconds
    talking: int  # calls that spoke through the window
    silent: list[int]  # those of them that heard nothing back louder than silence


def echo_check(datagrams: list[Datagram], sipp_port: int, calls: dict[int, Call], at: float) -> EchoCheck:
    """Each edge port SIPp spoke to through the window, matched to its call, and whether the edge sent
    anything louder than silence back (the echo host returns the caller's own speech)."""
    spoke: Counter[int] = Counter()
    heard: set[int] = set()
    for datagram in datagrams:
        packet = datagram.payload
        if len(packet) <= RTP_HEADER or packet[1] & 0x7F != PCMU:
            continue
        if datagram.source_port == sipp_port:
            spoke[datagram.destination_port] += 1
        elif datagram.destination_port == sipp_port and datagram.source_port not in heard:
            if rms(np.frombuffer(decode(rtp_payload(packet), "ulaw"), dtype=np.int16)) > BOT_AUDIO_RMS:
                heard.add(datagram.source_port)
    settled = {call.edge_port: call for call in sorted(calls.values(), key=lambda c: c.answered or 0)
               if call.answered is not None and call.answered <= at - SETTLED_SECONDS}
    talking = [settled[port] for port, count in spoke.items() if count >= SPOKE_PACKETS and port in settled]
    silent = [call.number for call in talking if call.edge_port not in heard]
    for call in talking:
        call.silent = call.silent or call.number in silent
    return EchoCheck(at, len(talking), silent)


@dataclass
class Minute:
    index: int
    seconds: float  # how long the row's sample ran (the last one may be short)
    edge_cpu: float  # the edge's process tree, % of one core
    rest_cpu: float  # the dispatcher and its bots, % of one core
    edge_rss_mb: float  # at the minute's end
    load: float  # the one-minute load average at its end
    echo: EchoCheck | None = None
    ends: Counter[str] = field(default_factory=Counter)  # the dispatcher's end reasons of sessions ended in it


HEADER = (f"{'min':>3} {'tried':>5} {'answ':>4} {'late':>4} {'ownBYE':>6} {'lost':>4} {'up':>5} "
          f"{'edge%':>6} {'%/call':>6} {'RSS MB':>7} {'disp%':>6} {'echo':>7} {'load':>5}  end reasons")


def row(minute: Minute, calls: list[Call], zero: float, idle_cpu: float) -> str:
    start = zero + minute.index * MINUTE
    mine = [call for call in calls if start <= call.invited < start + MINUTE]
    up = sum(call.up_seconds(start, start + minute.seconds) for call in calls) / max(minute.seconds, 1e-9)
    per_call = (minute.edge_cpu - idle_cpu) / up if up >= 1 else float("nan")
    echo = f"{minute.echo.talking - len(minute.echo.silent)}/{minute.echo.talking}" if minute.echo else "-"
    ends = ", ".join(f"{reason} {count}" for reason, count in minute.ends.most_common())
    answered, ended = sum(c.answered is not None for c in mine), sum(c.ended is not None for c in mine)
    return (f"{minute.index + 1:>3} {len(mine):>5} {answered:>4} {sum(c.late for c in mine):>4} {ended:>6} "
            f"{sum(c.lost for c in mine):>4} "
            f"{up:>5.1f} {minute.edge_cpu:>6.1f} {per_call:>6.2f} {minute.edge_rss_mb:>7.0f} {minute.rest_cpu:>6.1f} "
            f"{echo:>7} {minute.load:>5.2f}  {ends}")
