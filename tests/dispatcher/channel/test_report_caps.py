"""How many of a session's reports are passed on (dispatcher/channel/report_caps.py): each once (an error a few
times), counted per session in a bounded memory whose sessions heard from least lately are forgotten first."""

from __future__ import annotations

from botchannel.contract import Report
from dispatcher.channel.report_caps import MAX_REPEATED, ReportCaps


def ended(session_id: str) -> Report:
    return Report(event="ended", session_id=session_id, t=0.0)


def test_each_end_is_told_once_and_each_error_a_few_times() -> None:
    caps = ReportCaps()
    assert [caps.tells("m", ended("s1")) for _ in range(3)] == [True, False, False]
    errors = [caps.tells("m", Report(event="error", session_id="s1", t=0.0)) for _ in range(MAX_REPEATED + 2)]
    assert errors == [True] * MAX_REPEATED + [False, False]


def test_past_its_bound_the_session_heard_from_least_lately_is_forgotten() -> None:
    caps = ReportCaps(max_sessions=2)
    assert caps.tells("m", ended("old")) and caps.tells("m", ended("kept"))
    assert not caps.tells("m", ended("old"))  # heard from again: now the newest, "kept" the oldest
    assert caps.tells("m", ended("third"))  # a third session: "kept" is forgotten, "old" is not
    assert not caps.tells("m", ended("old"))
    assert caps.tells("m", ended("kept"))  # counted anew
