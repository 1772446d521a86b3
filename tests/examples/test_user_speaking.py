"""The parrot pipeline reports the user's turns the way Pipecat's RTVI observer reads them."""

from __future__ import annotations

from pipecat.frames.frames import (
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.tests.utils import run_test
from user_speaking import UserSpeakingFrames


async def test_vad_frames_are_followed_by_user_turn_frames() -> None:
    down, _ = await run_test(
        UserSpeakingFrames(),
        frames_to_send=[VADUserStartedSpeakingFrame(), VADUserStoppedSpeakingFrame()],
        expected_down_frames=[
            VADUserStartedSpeakingFrame,
            UserStartedSpeakingFrame,
            VADUserStoppedSpeakingFrame,
            UserStoppedSpeakingFrame,
        ],
    )
    assert len(down) == 4
