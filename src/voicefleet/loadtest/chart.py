"""The run's chart, a PNG: time to first audio and turn latency over the run (each session at the
moment it was due; a refused or failed session, which has no such time, marked on the time axis
at its moment so a run that lost sessions cannot look clean), and the two distributions.
matplotlib's object API with its Agg canvas: no display, no pyplot state, imported only when a
chart is written (~0.8 s)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from voicefleet.loadtest.record import FAILED, REFUSED, SessionRecord

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIDTH, HEIGHT, DPI = 11, 7, 100
LOST = ((REFUSED, "x", "tab:red"), (FAILED, "v", "tab:orange"))  # outcome, marker, colour


def write_chart(records: Sequence[SessionRecord], path: Path, title: str) -> Path:
    chart(records, title).savefig(path, format="png")
    return path


def chart(records: Sequence[SessionRecord], title: str) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(title)
    (over_first, over_turn), (spread_first, spread_turn) = figure.subplots(2, 2)
    first = [(r.due, r.first_audio) for r in records if r.first_audio is not None]
    turns = [(r.due, t) for r in records for t in r.turns if t is not None]
    _over_time(over_first, first, "POST /start → first bot audio", "heard")
    _lost(over_first, records)
    _over_time(over_turn, turns, "end of the caller's speech → first bot audio (each turn)", "turns")
    _distribution(spread_first, [v for _, v in first], "time to first audio")
    _distribution(spread_turn, [v for _, v in turns], "turn latency")
    return figure


def _lost(axes: Axes, records: Sequence[SessionRecord]) -> None:
    """Refused and failed sessions on the time axis (y = 0: they have no time to first audio), counted
    in the legend, which is drawn whenever any session was lost."""
    lost = False
    for outcome, marker, colour in LOST:
        due = [r.due for r in records if r.outcome == outcome]
        if due:
            lost = True
            axes.scatter(due, [0.0] * len(due), marker=marker, color=colour, s=40, clip_on=False, zorder=3,
                         label=f"{outcome} ({len(due)})")
    if lost:
        axes.legend(loc="upper left", fontsize=8)


def _over_time(axes: Axes, points: list[tuple[float, float]], title: str, label: str) -> None:
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("session due at (s from the run's start)")
    axes.set_ylabel("seconds")
    if points:
        axes.scatter([x for x, _ in points], [y for _, y in points], s=14, label=f"{label} ({len(points)})")
        axes.set_ylim(bottom=0)
    else:
        _nothing(axes)


def _distribution(axes: Axes, values: list[float], what: str) -> None:
    axes.set_title(f"{what}: distribution", fontsize=10)
    axes.set_xlabel("seconds")
    axes.set_ylabel("sessions" if what == "time to first audio" else "turns")
    if values:
        axes.hist(values, bins=min(30, max(5, len(values) // 2)))
    else:
        _nothing(axes)


def _nothing(axes: Axes) -> None:
    axes.text(0.5, 0.5, "none measured", ha="center", va="center", transform=axes.transAxes)
