"""The run's chart, a PNG: time to first audio and turn latency over the run (each session at the
moment it was due), and the two distributions. matplotlib's object API with its Agg canvas: no
display, no pyplot state, imported only when a chart is written (~0.8 s)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cli.loadtest.record import SessionRecord

if TYPE_CHECKING:
    from matplotlib.axes import Axes

WIDTH, HEIGHT, DPI = 11, 7, 100


def write_chart(records: Sequence[SessionRecord], path: Path, title: str) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(title)
    (over_first, over_turn), (spread_first, spread_turn) = figure.subplots(2, 2)
    first = [(r.due, r.first_audio) for r in records if r.first_audio is not None]
    turns = [(r.due, t) for r in records for t in r.turns if t is not None]
    _over_time(over_first, first, "POST /start → first bot audio")
    _over_time(over_turn, turns, "end of the caller's speech → first bot audio (each turn)")
    _distribution(spread_first, [v for _, v in first], "time to first audio")
    _distribution(spread_turn, [v for _, v in turns], "turn latency")
    figure.savefig(path, format="png")
    return path


def _over_time(axes: Axes, points: list[tuple[float, float]], title: str) -> None:
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("session due at (s from the run's start)")
    axes.set_ylabel("seconds")
    if points:
        axes.scatter([x for x, _ in points], [y for _, y in points], s=14)
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
