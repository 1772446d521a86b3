"""What the caller lived through, in figures, for every session whether or not it is recorded: how
long the bot took to answer each turn, the caller's turns it left unanswered, how many of its own
turns the caller cut off, and whether the caller left before the first exchange was over.

The turns are the recording's (bot/recording/turns.py: the same frames, the same latency from the
end of the caller's speech to the bot's first audio), seen by an observer of the host's own on
every pipeline the user's bot builds; no words are kept, only counts and timings. The figures go to
the dispatcher with the session's `ended` report (botchannel/conversation.py bounds them), where the
release judge compares a canary's with the stable release's (docs/releases.md, "The conversation").
"""

from __future__ import annotations

import time
from typing import Any

from pipecat.frames.frames import UserStartedSpeakingFrame, UserStoppedSpeakingFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed

from bot.loop_lag import LoopLag
from bot.recording.tap import pushed_at
from bot.recording.turns import TURN_FRAMES, TurnLog, one_event
from botchannel.conversation import CALLER_ENDS, MAX_LATENCIES

# A caller turn still unanswered when the call ended counts as unanswered only if the call went on
# this long after it: a caller who says goodbye and hangs up was not left waiting.
UNANSWERED_AFTER_SECONDS = 5.0


class ConversationLog(TurnLog):
    """The recording's turn logic (`TurnLog.heard`), keeping figures instead of lines."""

    def __init__(self) -> None:
        super().__init__()
        self.caller_turns = 0
        self.unanswered = 0
        self.bot_turns = 0
        self.cut_off = 0
        self.latencies: list[float] = []  # the answers' latencies, the first MAX_LATENCIES
        self.exchanged = False  # a caller turn was answered by a bot turn played to its end
        self._waiting: float | None = None  # when the caller's turn ended that no bot speech has answered yet
        self._answering = False  # the bot turn under way answers a caller turn

    def heard(self, frame: object, source: object, direction: Any, at: float) -> None:
        if not one_event(direction):
            return
        speaking = self._bot is not None
        super().heard(frame, source, direction, at)
        if isinstance(frame, UserStartedSpeakingFrame) and self._waiting is not None:
            self.unanswered += 1  # speaking again, the last turn still unanswered
            self._waiting = None
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self.caller_turns += 1
            self._waiting = at
        elif self._bot is not None and not speaking and self._waiting is not None:  # the bot's answer began
            self._answering, self._waiting = True, None

    def _add(self, line: dict[str, Any]) -> None:
        """A turn `TurnLog` closed: counted, its words never kept."""
        if line.get("who") != "bot":
            return
        self.bot_turns += 1
        self.cut_off += bool(line.get("interrupted"))
        if self._answering:
            if isinstance(line.get("latency"), float) and len(self.latencies) < MAX_LATENCIES:
                self.latencies.append(line["latency"])
            self.exchanged = self.exchanged or not line.get("interrupted")
        self._answering = False

    def figures(self, at: float, reason: str | None) -> dict[str, Any]:
        """The session's figures at its end (`at`, on the frames' clock; `reason`: why it ended)."""
        self.close(at)
        unanswered = self.unanswered
        if self._waiting is not None and at - self._waiting >= UNANSWERED_AFTER_SECONDS:
            unanswered += 1
        return {"caller_turns": self.caller_turns, "unanswered": unanswered, "bot_turns": self.bot_turns,
                "cut_off": self.cut_off, "latencies": list(self.latencies),
                "left_in_first_turn": reason in CALLER_ENDS and not self.exchanged}


class ConversationWatch(BaseObserver):
    """Feeds every pipeline's turn frames (first pushes, timed when pushed) to one `ConversationLog`,
    and watches the pipelines' loop keep real time from the first frame on (bot/loop_lag.py)."""

    def __init__(self) -> None:
        super().__init__(observe_every_push=False)
        self.log = ConversationLog()
        self.lag = LoopLag()
        self.heard_any = False

    async def on_push_frame(self, data: FramePushed) -> None:
        self.lag.start()
        if isinstance(data.frame, TURN_FRAMES):
            self.heard_any = True
            self.log.heard(data.frame, data.source, data.direction, pushed_at(data))

    def figures(self, reason: str | None) -> dict[str, Any] | None:
        """The figures for the `ended` report; None when no turn frame was ever seen (nobody joined)."""
        self.lag.stop()
        if not self.heard_any:
            return None
        return {**self.log.figures(time.monotonic(), reason), "behind": self.lag.report(),
                "blocked": self.lag.own_blocks.report()}
