"""Intervals on the wall clock the planner runs on (epoch seconds: dispatcher/reserve/sizer.py).

NTP may step that clock back. Something done "every n seconds" by comparing against when it was
last done would then wait for the whole step (an hour back, an hour without it): a time before
the last one counts as due.
"""

from __future__ import annotations


def due(now: float, last: float, every: float) -> bool:
    """Whether `every` seconds have passed since `last`, or the clock went back past it."""
    return not 0 <= now - last < every
