"""The load test's parts that need no dispatcher: the schedule and its cap, percentiles, the
timeline's figures, μ-law (the standard coder's bytes exactly), and the rail's idea of this machine."""

from __future__ import annotations

import io
import warnings

import click
import numpy as np
import pytest

from voicefleet.loadtest import mulaw
from voicefleet.loadtest.plan import Plan, checked, duration, rate
from voicefleet.loadtest.progress import Progress
from voicefleet.loadtest.record import SessionRecord
from voicefleet.loadtest.summary import agreement, percentile, spread, summarise
from voicefleet.loadtest.timeline import durations, end_reason
from voicefleet.settings import is_loopback


@pytest.mark.parametrize(("text", "per_second"), [("5/min", 5 / 60), ("1/s", 1.0), ("30/h", 30 / 3600),
                                                  ("0.5/sec", 0.5), (" 20 / m ", 20 / 60)])
def test_rates(text: str, per_second: float) -> None:
    assert rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["5", "5/day", "0/min", "-1/s", "/min", "five/min"])
def test_what_is_not_a_rate_says_what_is(text: str) -> None:
    with pytest.raises(click.BadParameter, match="such as 5/min"):
        rate(text)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("2m", 120), ("1h", 3600), ("1m30s", 90), ("45", 45)])
def test_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "2x", "m2", "1m 30s", "-5"])
def test_what_is_not_a_duration_says_what_is(text: str) -> None:
    with pytest.raises(click.BadParameter, match="such as 90s"):
        duration(text)


def test_the_plan_places_every_session_due_before_the_end_evenly() -> None:
    plan = Plan(rate=5 / 60, concurrency=3, duration=120, max_sessions=100)
    assert plan.sessions == 10
    assert [plan.due(i) for i in range(3)] == [0, 12, 24]
    assert Plan(rate=1, concurrency=1, duration=2.5, max_sessions=5).sessions == 3
    assert checked(Plan(rate=1, concurrency=1, duration=5, max_sessions=5)).sessions == 5
    with pytest.raises(click.UsageError, match="places 6 sessions, over --max-sessions 5"):
        checked(Plan(rate=1, concurrency=1, duration=6, max_sessions=5))


def test_percentiles_interpolate_as_numpy_does() -> None:
    values = [0.9, 0.1, 0.5, 0.3, 0.7, 1.5, 2.0]
    for p in (0, 50, 90, 95, 99, 100):
        assert percentile(values, p) == pytest.approx(float(np.percentile(values, p)))
    assert spread([]) is None
    assert spread([2.0]) == {"n": 1, "min": 2.0, "p50": 2.0, "p90": 2.0, "p95": 2.0, "p99": 2.0, "max": 2.0}


def test_the_timeline_figures_count_from_the_request() -> None:
    events = [{"event": "requested", "at": 100.0}, {"event": "launched", "at": 100.2},
              {"event": "ready", "at": 103.25}, {"event": "joined", "at": 103.5}, {"event": "first_audio", "at": 103.7},
              {"event": "first_audio", "at": 109.0}]
    assert durations(events) == {"joined": 3.5, "ready": 3.25, "first_audio": 3.7}
    assert durations(events[1:]) == {}
    assert durations([{"event": "requested", "at": 5.0}, {"event": "failed", "at": 5.1}]) == {}
    assert end_reason(events) is None
    assert end_reason([*events, {"event": "ended", "at": 110.0, "reason": "bot_failed", "detail": "bot.py: boom"}]) \
        == "bot_failed: bot.py: boom"
    assert end_reason([{"event": "ended", "at": 1.0, "reason": "peer_disconnected"}]) == "peer_disconnected"


def test_outcomes_are_counted_by_code_and_set_beside_the_timeline() -> None:
    ok = SessionRecord(0, 0.0, "webrtc", ready=3.0, connected=3.1, first_audio=3.3, turns=[0.4, None],
                       timeline={"ready": 2.9, "joined": 3.2, "first_audio": 3.0})
    refused = SessionRecord(1, 1.0, "webrtc", outcome="refused", code="at_capacity", status=429)
    failed = SessionRecord(2, 2.0, "webrtc", outcome="failed", code="no_first_audio", ready=2.0)
    summary = summarise([ok, refused, failed])
    assert summary["sessions"] == {"due": 3, "placed": 3, "ok": 1, "refused": 1, "failed": 1, "dropped": 0,
                                  "caller_spoke_first": 0}
    assert summary["refused_by_code"] == {"at_capacity": 1}
    assert summary["failed_by_code"] == {"no_first_audio": 1}
    assert summary["seconds"]["turn"]["n"] == 1
    assert summary["seconds"]["ready"]["n"] == 2
    assert agreement([ok, failed], "first_audio") == {"interval": "start asked → bot's first audio",
                                                      "n": 1, "caller_p50": 3.3, "timeline_p50": 3.0,
                                                      "difference_p50": 0.3, "relative_difference_p50": 0.1,
                                                      "relative_difference_max": 0.1}
    # The media connection: the caller's `connected` beside the bot's `joined`, not beside its own name.
    assert agreement([ok, failed], "connected") == {"interval": "start asked → media connected",
                                                    "n": 1, "caller_p50": 3.1, "timeline_p50": 3.2,
                                                    "difference_p50": -0.1, "relative_difference_p50": 0.0313,
                                                    "relative_difference_max": 0.0313}


def test_the_progress_line_says_where_the_run_is() -> None:
    stream = io.StringIO()
    progress = Progress(planned=10, duration=120, stream=stream)
    done = [SessionRecord(0, 0.0, "webrtc", first_audio=2.0, turns=[0.5]),
            SessionRecord(1, 12.0, "webrtc", outcome="refused", code="unauthorized")]
    progress.show(done, [(SessionRecord(2, 24.0, "webrtc", first_audio=1.0), 3.0)])
    line = stream.getvalue()
    assert line.startswith("loadtest 0:00/2:00  placed 3/10  in flight 1  ok 1  refused 1  failed 0")
    assert line.rstrip().endswith("first audio p50 1.50 s (0 waiting)  turn p50 0.50 s")


def test_the_live_p50_counts_the_sessions_still_waiting_for_their_first_audio() -> None:
    # As seen: one fast session done (1.6 s) and slow ones in flight showed p50 1.6 s; the run's was 10.3 s.
    progress = Progress(planned=5, duration=60, stream=io.StringIO())
    done = [SessionRecord(0, 0.0, "webrtc", first_audio=1.6)]
    in_flight = [(SessionRecord(1, 12.0, "webrtc"), 9.0), (SessionRecord(2, 24.0, "webrtc"), 11.0),
                 (SessionRecord(3, 36.0, "webrtc", outcome="failed", code="connect_failed"), 2.0),
                 (SessionRecord(4, 48.0, "webrtc", outcome="refused", code="at_capacity"), 0.1)]
    line = progress.line(done, in_flight)
    assert "placed 5/5  in flight 4  ok 1  refused 1  failed 1" in line
    assert "first audio p50 ≥ 9.00 s (2 waiting)" in line


def test_mu_law_is_the_reference_coders() -> None:
    assert mulaw.decode(bytes([0xFF, 0x7F, 0x00, 0x80])).tolist() == [0, 0, -32124, 32124]
    every = np.arange(-32768, 32768, dtype=np.int16)
    coded = mulaw.encode(every)
    back = mulaw.decode(coded).astype(np.int32)
    error = np.abs(back - every.astype(np.int32))
    assert error.max() <= 1024  # the widest segment's half-step
    assert np.all(np.diff(back) >= 0)  # order kept
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # gone from Python 3.13: compared where it is there
    assert coded == audioop.lin2ulaw(every.tobytes(), 2)
    assert mulaw.decode(bytes(range(256))).tobytes() == audioop.ulaw2lin(bytes(range(256)), 2)


@pytest.mark.parametrize(("host", "here"), [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                            ("localhost", True), ("10.0.0.5", False), ("voice.example.com", False),
                                            ("localhost.example.com", False)])
def test_this_machine_is_loopback_only(host: str, here: bool) -> None:
    assert is_loopback(host) is here
