"""The record a kept machine end carries (store/kept_end_record.py): the session's timeline as JSON, bounded;
a longer one loses its middle events (said), never its first or its machine's end; what is not a list of
events reads as no record."""

from __future__ import annotations

import json
import logging

import pytest

from dispatcher.store.kept_end_record import MAX_RECORD_BYTES, decoded, encoded

REQUESTED = {"event": "requested", "at": 1.0, "release": "stable", "key": "k-1"}
END = {"event": "machine_ended", "at": 9.0, "state": "ended"}


def report(n: int, size: int) -> dict:
    return {"event": "usage", "at": 2.0 + n / 100, "detail": "x" * size}


def test_a_timeline_is_kept_as_it_is_and_read_back() -> None:
    events = [REQUESTED, {"event": "launched", "at": 2.0, "machine_id": "m-1"}, END]
    text = encoded("s-1", events)
    assert text is not None and decoded(text) == events


def test_a_long_timeline_loses_its_middle_events_within_the_bound_and_says_so(
        caplog: pytest.LogCaptureFixture) -> None:
    events = [REQUESTED, *(report(n, 1_000) for n in range(60)), END]
    with caplog.at_level(logging.WARNING):
        text = encoded("s-1", events)
    assert text is not None and len(text) <= MAX_RECORD_BYTES
    kept = decoded(text)
    assert kept is not None and kept[0] == REQUESTED and kept[-1] == END and 2 < len(kept) < len(events)
    assert kept[-2] == events[-2]  # the latest report stays
    assert "carries" in caplog.text and "s-1" in caplog.text


def test_a_record_whose_first_and_last_alone_exceed_the_bound_is_refused_and_said(
        caplog: pytest.LogCaptureFixture) -> None:
    huge_end = {**END, "detail": "y" * MAX_RECORD_BYTES}
    with caplog.at_level(logging.WARNING):
        assert encoded("s-2", [REQUESTED, report(0, 10), huge_end]) is None
    assert "without its timeline" in caplog.text and "s-2" in caplog.text


@pytest.mark.parametrize("raw", [b"not json", json.dumps({"event": "x"}).encode(), json.dumps([1, 2]).encode()])
def test_what_is_not_a_list_of_events_reads_as_no_record(raw: bytes) -> None:
    assert decoded(raw) is None
