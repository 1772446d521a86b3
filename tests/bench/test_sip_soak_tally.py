"""bench/sip_soak_tally.py: each call read from SIPp's log lines, which calls count as lost, and the echo
check that matches the edge's RTP ports to calls and hears whether each one got its speech back."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from bench.sip_soak_tally import ANSWER_BOUND_SECONDS, Call, echo_check, read_calls
from tests.sip.loopback_udp import Datagram

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

SIPP_PORT = 22520
ZERO = 1_800_000_000.0


def rtp(pcm16: bytes) -> bytes:
    return bytes([0x80, 0]) + bytes(10) + audioop.lin2ulaw(pcm16, 2)


LOUD = rtp((np.sin(np.arange(160) / 3) * 8000).astype(np.int16).tobytes())
QUIET = rtp(bytes(320))


def test_each_call_is_read_from_sipps_log_and_counted_lost_by_its_own_fault(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    log.write_text("invite 1 22520 1000\nanswered 1 40002 1500\nended 1 61500\n"  # a whole call
                   "invite 2 22520 2000\nanswered 2 40010 14000\nended 2 74000\n"  # answered 12 s late
                   "invite 3 22520 3000\nanswered 3 40020 3400\n"  # ended before its own BYE
                   "invite 4 22520 4000\n")  # never answered
    calls = read_calls(log, ZERO)
    assert calls[1] == Call(1, ZERO + 1.0, 40002, ZERO + 1.5, ZERO + 61.5)
    assert [calls[n].lost for n in (1, 2, 3, 4)] == [False, True, True, True]
    assert calls[2].late and calls[2].answered - calls[2].invited > ANSWER_BOUND_SECONDS  # type: ignore[operator]
    assert calls[1].up_seconds(ZERO, ZERO + 60) == 58.5
    assert round(calls[3].up_seconds(ZERO + 60, ZERO + 120), 3) == 3.4  # until 60 s after its answer, its BYE unseen
    assert calls[4].up_seconds(ZERO, ZERO + 60) == 0.0


def test_a_call_that_spoke_through_the_window_and_heard_nothing_back_is_silent() -> None:
    at = ZERO + 30
    calls = {1: Call(1, ZERO, 40002, ZERO + 1, None), 2: Call(2, ZERO, 40010, ZERO + 2, None),
             3: Call(3, ZERO, 40020, at - 0.5, None)}  # answered just before: not checked
    datagrams = []
    for i in range(200):
        when = at + i * 0.02
        for port in (40002, 40010, 40020):
            datagrams.append(Datagram(when, SIPP_PORT, port, LOUD))
        datagrams.append(Datagram(when, 40002, SIPP_PORT, LOUD if i % 50 == 0 else QUIET))  # its echo
        datagrams.append(Datagram(when, 40010, SIPP_PORT, QUIET))  # only silence back
    check = echo_check(datagrams, SIPP_PORT, calls, at)
    assert (check.talking, check.silent) == (2, [2])
    assert calls[2].silent and calls[2].lost and not calls[1].silent
