"""Both sides of a call on one wall clock (bot/recording/clock.py)."""

from __future__ import annotations

import numpy as np

from bot.recording.clock import TwoTrackClock

RATE = 1000  # one sample a millisecond: positions read as times


def tone(ms: int, value: int) -> np.ndarray:
    return np.full(ms, value, dtype=np.int16)


def channels(pcm: bytes) -> tuple[np.ndarray, np.ndarray]:
    stereo = np.frombuffer(pcm, dtype="<i2").reshape(-1, 2)
    return stereo[:, 0], stereo[:, 1]


def test_a_silent_caller_never_shortens_the_recording() -> None:
    clock = TwoTrackClock(RATE)
    for i in range(10):  # the bot speaks for a second, the caller says nothing
        assert clock.add(1, tone(100, 7), start=i * 0.1)
    left, right = channels(clock.take_until(2.0))
    assert len(left) == 2000  # as long as the call, not as the shorter side
    assert not left.any()
    assert (right[:1000] == 7).all() and not right[1000:].any()


def test_a_side_silent_for_a_while_is_silent_there() -> None:
    clock = TwoTrackClock(RATE)
    clock.add(0, tone(100, 5), start=0.0)
    clock.add(0, tone(100, 5), start=1.0)  # 900 ms later: a pause, kept as one
    left, _ = channels(clock.take_until(1.1))
    assert (left[:100] == 5).all() and not left[100:1000].any() and (left[1000:1100] == 5).all()


def test_audio_sent_faster_than_real_time_is_laid_end_to_end_at_real_time() -> None:
    clock = TwoTrackClock(RATE)
    for value in (1, 2, 3):  # three 200 ms frames, all arriving at once
        assert clock.add(1, tone(200, value), start=0.0)
    _, right = channels(clock.take_until(0.3))
    assert (right[:200] == 1).all() and (right[200:300] == 2).all()
    assert clock.ahead(1) == 0.3  # the rest waits for its time
    _, right = channels(clock.take_until(0.6))
    assert (right[:100] == 2).all() and (right[100:300] == 3).all()


def test_network_jitter_is_closed_up_rather_than_heard_as_a_gap() -> None:
    clock = TwoTrackClock(RATE, jitter_seconds=0.06)
    clock.add(0, tone(20, 1), start=0.0)
    clock.add(0, tone(20, 2), start=0.05)  # 30 ms late
    left, _ = channels(clock.take_until(0.04))
    assert (left[:20] == 1).all() and (left[20:40] == 2).all()


def test_a_side_too_far_ahead_is_refused() -> None:
    clock = TwoTrackClock(RATE, max_ahead_seconds=1.0)
    assert clock.add(1, tone(900, 1), start=0.0)
    assert not clock.add(1, tone(200, 1), start=0.0)
    assert clock.ahead(1) == 0.9
