"""The run's chart shows the sessions that were refused or failed, not only those measured."""

from __future__ import annotations

from pathlib import Path

from voicefleet.loadtest.chart import chart, write_chart
from voicefleet.loadtest.record import SessionRecord

RECORDS = [SessionRecord(0, 0.0, "webrtc", first_audio=2.0, turns=[0.5]),
           SessionRecord(1, 12.0, "webrtc", outcome="refused", code="at_capacity", status=429),
           SessionRecord(2, 24.0, "webrtc", outcome="refused", code="at_capacity", status=429),
           SessionRecord(3, 36.0, "webrtc", outcome="failed", code="no_first_audio"),
           SessionRecord(4, 48.0, "webrtc", outcome="dropped", code="concurrency")]


def test_refused_and_failed_sessions_are_marked_at_their_moment_and_counted() -> None:
    first_audio = chart(RECORDS, "run").axes[0]
    legend = first_audio.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == ["heard (1)", "refused (2)", "failed (1)"]
    marked = {tuple(map(tuple, c.get_offsets())) for c in first_audio.collections}
    assert ((12.0, 0.0), (24.0, 0.0)) in marked and ((36.0, 0.0),) in marked


def test_a_run_that_lost_no_session_has_no_such_marks(tmp_path: Path) -> None:
    figure = chart(RECORDS[:1], "run")
    assert figure.axes[0].get_legend() is None and len(figure.axes[0].collections) == 1
    assert write_chart(RECORDS, tmp_path / "chart.png", "run").read_bytes().startswith(b"\x89PNG")
