"""A provider look's misses, remembered a short while and in bounded number (dispatcher/machines/recent_misses.py)."""

from __future__ import annotations

from dispatcher.machines.recent_misses import RecentMisses


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_miss_is_remembered_for_its_seconds_then_forgotten() -> None:
    clock = Clock()
    misses = RecentMisses(seconds=30, clock=clock)
    misses.add("rsv-1")
    clock.now += 29.9
    assert "rsv-1" in misses and "rsv-2" not in misses
    clock.now += 0.2
    assert "rsv-1" not in misses


def test_only_the_newest_misses_are_kept() -> None:
    misses = RecentMisses(seconds=30, limit=2, clock=Clock())
    for key in ("rsv-1", "rsv-2", "rsv-3"):
        misses.add(key)
    assert "rsv-1" not in misses and "rsv-2" in misses and "rsv-3" in misses
