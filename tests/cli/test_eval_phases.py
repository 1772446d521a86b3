"""A call's phases: where its time went, and how long the bot's answers played as the caller heard them."""

from __future__ import annotations

import pytest

from voicefleet.evals.phases import Phases, audible


def test_an_answers_audio_runs_from_its_first_loud_frame_to_the_end_of_its_last() -> None:
    times = [0.98, 1.0, 1.02, 1.5, 2.0, 2.02, 3.0]  # one frame before the turn, a pause inside the answer
    levels = [900, 20, 800, 20, 700, 10, 5]
    assert audible(times, levels, after=0.99) == pytest.approx(2.0 - 1.02 + 0.02)
    assert audible(times, [0] * len(times), after=0) == 0.0  # silence: nothing played


def test_phases_add_up_and_a_misspelt_one_is_refused() -> None:
    phases = Phases(began=10.0)
    phases.add("speaking", 1.5)
    phases.add("speaking", 0.5)
    phases.add("reply_wait", -0.01)  # a clock's jitter is no negative wait
    assert phases.as_dict(run_began=8.0)["phases"] == {"speaking": 2.0, "reply_wait": 0.0}
    assert phases.as_dict(run_began=8.0)["began_s"] == 2.0
    with pytest.raises(ValueError, match="unknown phase"):
        phases.add("speech", 1.0)
