"""The load test's two clocks: the caller's (from its POST /start) and the dispatcher's (from the
session's timeline), each labelled, and compared only where both time the same interval."""

from __future__ import annotations

from voicefleet.loadtest.record import SessionRecord
from voicefleet.loadtest.result import tables
from voicefleet.loadtest.summary import summarise

OWN_COST = {"cpu_seconds": 1.0, "cpu_seconds_per_session": 0.5, "cpu_share_of_one_core": 0.1,
            "loop_lag_p99_seconds": 0.01}


def warm(index: int, answer: float, inside: float) -> SessionRecord:
    """A session on a warm bot: the caller's `ready` is the start's answer; the timeline's a few ms."""
    return SessionRecord(index, float(index), "webrtc", status=201, start_answer=answer, ready=answer,
                         first_audio=answer + 1.0, turns=[0.6], timeline={"ready": inside, "first_audio": answer + 0.9})


def test_a_warm_start_is_not_compared_with_the_time_inside_the_server() -> None:
    # As measured: a 0.3 s answer against a 4 ms `ready` inside the server once printed 7,400 %.
    summary = summarise([warm(0, 0.300, 0.004), warm(1, 0.310, 0.040)])
    assert set(summary["timeline_agreement"]) == {"connected", "first_audio"}
    assert summary["timeline_agreement"]["first_audio"]["relative_difference_max"] < 0.1
    assert summary["timeline_seconds"]["ready"]["p50"] == 0.022
    comparison = tables(summary, OWN_COST).split("SAME INTERVAL", 1)[1].split("\n\n")[0]
    header, *rows = comparison.splitlines()
    assert "CALLER'S CLOCK P50" in header and "DISPATCHER'S CLOCK P50" in header
    assert len(rows) == 1 and rows[0].startswith("start asked → bot's first audio")
    assert float(rows[0].rsplit(maxsplit=1)[1].rstrip("%")) < 10


def test_every_row_names_its_clock_and_interval() -> None:
    text = tables(summarise([warm(0, 0.3, 0.004)]), OWN_COST)
    header = next(line for line in text.splitlines() if line.startswith("CLOCK"))
    rows = [line for line in text.splitlines() if line.startswith(("caller's", "dispatcher's"))]
    assert header.split()[:2] == ["CLOCK", "SECONDS"]
    assert [row.split("  ")[0] for row in rows] == ["caller's"] * 5 + ["dispatcher's"] * 3
    assert "POST /start sent → bot known running" in rows[1] and "requested → bot's ready report" in rows[6]


def test_a_phone_calls_clocks_start_at_different_moments_so_are_not_compared() -> None:
    # A call's session is requested when its stream connects, after the start's answer.
    call = SessionRecord(0, 0.0, "twilio", status=201, start_answer=0.1, ready=1.0, first_audio=2.5,
                         timeline={"ready": 0.8, "first_audio": 1.2})
    summary = summarise([call])
    assert summary["timeline_agreement"] == {"connected": None, "first_audio": None}
    assert summary["timeline_seconds"]["first_audio"]["n"] == 1
    assert "SAME INTERVAL" not in tables(summary, OWN_COST)
