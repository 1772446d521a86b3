"""The user's turns as Pipecat's `UserStarted/StoppedSpeakingFrame`s, from the VAD's frames.

Pipecat's RTVI observer tells the client `user-started-speaking` / `user-stopped-speaking`
(what `onUserStartedSpeaking` listens to) only for those frames, which a user aggregator
normally emits; it ignores the VAD's own frames unless an option is on. The keyed pipeline has
a user aggregator; the parrot has none, so this processor stands in for it there.
"""

from __future__ import annotations

from pipecat.frames.frames import (
    Frame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class UserSpeakingFrames(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, VADUserStartedSpeakingFrame):
            await self.push_frame(UserStartedSpeakingFrame(), direction)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            await self.push_frame(UserStoppedSpeakingFrame(), direction)
