"""A pool's size from the planner's targets: up at once, down after the window, a small fall only after a
further window, never above the cap (a size found by hand or under an older RESERVE_MAX_IDLE)."""

from __future__ import annotations

from dispatcher.reserve.scale_window import ScaleDownWindow


def test_a_rise_is_at_once_and_a_fall_waits_for_the_window() -> None:
    window = ScaleDownWindow(60, cap=50)
    assert window.size(0, 3) == 3
    assert window.size(1, 20) == 20
    assert all(window.size(t, 2) == 20 for t in range(2, 61))  # the peak is still in the window
    assert window.size(62, 2) == 2  # the peak left it: a fall of more than the slack, at once


def test_a_fall_within_the_slack_is_made_after_a_further_window() -> None:
    window = ScaleDownWindow(60, cap=50)
    window.size(0, 12)
    sizes = [window.size(t, 11) for t in range(1, 200)]
    assert sizes[:100] == [12] * 100  # 11 is within a fifth of 12: not at the window's end
    assert sizes[-1] == 11  # but once every target of a further window was below it


def test_no_size_is_above_the_cap_whatever_was_found() -> None:
    window = ScaleDownWindow(60, cap=17)
    window.seed(0, 20)  # found so, by hand or under an older cap
    assert window.kept == 17 and window.size(1, 3) == 17
    assert ScaleDownWindow(60, cap=17).size(0, 30) == 17
