"""Both sides of a call on one wall clock (bot/recording/clock.py)."""

from __future__ import annotations

import numpy as np
import pytest

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
        assert clock.add(1, tone(100, 7), start=i * 0.1) is not None
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
        assert clock.add(1, tone(200, value), start=0.0) is not None
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
    assert clock.add(1, tone(900, 1), start=0.0) is not None
    assert clock.add(1, tone(200, 1), start=0.0) is None
    assert clock.ahead(1) == 0.9


def test_a_backlog_of_the_callers_audio_is_laid_where_it_was_said_and_the_bot_where_it_was_played() -> None:
    """A phone call's first second, held while the bot started, arrives at once at t=1.0: the call
    began a second before its first frame arrived, and the bot's answer at 1.5 is 1.5 s into it."""
    clock = TwoTrackClock(RATE)
    for i in range(50):  # 50 frames of 20 ms, all arriving at 1.0 (heard from 1.0 less their length)
        clock.add(0, tone(20, i + 1), start=1.0 - 0.02)
    assert clock.origin == pytest.approx(0.0)  # the call began when its first frame was said
    for i in range(25):  # then live: a frame every 20 ms
        clock.add(0, tone(20, 100), start=1.0 + i * 0.02)
    assert clock.add(1, tone(200, 9), start=1.5) == 1.5
    left, right = channels(clock.take_until(1.7))
    assert [left[i * 20] for i in range(50)] == list(range(1, 51))  # in order, none cut
    assert (left[1000:1500] == 100).all()
    assert not right[:1500].any() and (right[1500:1700] == 9).all()


def test_the_bots_audio_laid_before_a_backlog_arrived_moves_with_the_calls_start() -> None:
    clock = TwoTrackClock(RATE)
    clock.add(0, tone(20, 1), start=0.98)  # the backlog's first frame, at 1.0
    clock.add(1, tone(100, 9), start=1.1)  # a greeting laid at 0.12 s as the clock then stood
    for _ in range(49):  # the rest of the backlog: a second before
        clock.add(0, tone(20, 1), start=0.98)
    left, right = channels(clock.take_until(1.3))
    assert (left[:1000] == 1).all()
    assert not right[:1100].any() and (right[1100:1200] == 9).all()
    assert clock.end(1) == pytest.approx(1.2)


def test_a_network_stall_then_its_backlog_leaves_the_caller_where_it_was() -> None:
    """200 ms with nothing, then those frames at once: the silence laid for the stall is taken out
    again, so the caller's audio after it is not late for the rest of the call."""
    clock = TwoTrackClock(RATE, jitter_seconds=0.06)
    for i in range(10):
        clock.add(0, tone(20, 1), start=i * 0.02)
    for _ in range(10, 21):  # frames 10..20 arrive together at 0.42
        clock.add(0, tone(20, 2), start=0.40)
    clock.add(0, tone(20, 3), start=0.42)  # live again
    left, _ = channels(clock.take_until(0.44))
    assert (left[:200] == 1).all() and (left[200:420] == 2).all() and (left[420:440] == 3).all()
    assert clock.origin == pytest.approx(0.0)


def test_the_bots_audio_that_reaches_the_clock_after_its_moment_was_handed_out_says_how_late_it_was_laid() -> None:
    clock = TwoTrackClock(RATE)
    clock.add(0, tone(1000, 5), start=0.0)
    clock.add(1, tone(100, 7), start=0.0)
    clock.take_until(1.0)
    assert clock.late == 0.0
    assert clock.add(1, tone(100, 7), start=0.4) == 1.0  # played at 0.4 s, its moment written already
    assert clock.late == pytest.approx(0.6)
    clock.add(1, tone(100, 7), start=1.05)  # behind the audio it has: queued, as a fast sender's
    assert clock.late == pytest.approx(0.6)
