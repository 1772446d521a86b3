"""Nothing of the call is handed out while a backlog of the caller's audio is still arriving
(bot/recording/catching_up.py): each piece moves the call's start back."""

from __future__ import annotations

import numpy as np

from bot.recording.catching_up import MAX_HELD_SECONDS, CatchingUp
from bot.recording.clock import CALLER, TwoTrackClock

RATE = 1000


def test_takes_wait_while_the_callers_audio_comes_ahead_of_real_time_and_resume_once_it_is_live() -> None:
    clock, now = TwoTrackClock(RATE), [0.0]
    waits = CatchingUp(clock, lambda: now[0])
    looks = []
    for step in range(40):  # 2 s of the caller's audio in 1 s (a held backlog read at twice real time), then live
        now[0] += 0.05
        for _ in range(2 if step < 20 else 1):
            clock.add(CALLER, np.zeros(50, dtype=np.int16), start=now[0] - 0.05)
        if step % 10 == 9:  # the writer looks every half second
            looks.append(waits.holds())
    assert looks == [True, True, False, False]  # live from 1 s on: the next look hands out


def test_a_caller_that_never_stops_coming_ahead_of_real_time_is_handed_out_after_a_while() -> None:
    clock, now = TwoTrackClock(RATE, max_ahead_seconds=1e6), [0.0]
    waits = CatchingUp(clock, lambda: now[0])
    looks = []
    while now[0] < MAX_HELD_SECONDS + 1.0:
        now[0] += 0.5
        clock.add(CALLER, np.zeros(1000, dtype=np.int16), start=now[0] - 1.0)  # a second of audio every half second
        looks.append(waits.holds())
    # The first piece sets the call's start; from the second on it moves, for MAX_HELD_SECONDS.
    assert not looks[0] and all(looks[1:-1]) and not looks[-1], looks
