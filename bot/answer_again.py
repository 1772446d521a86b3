"""An answer Gemini Live's connection cut mid-sentence, asked for again once the session has resumed.

Gemini ends each connection after about 10 minutes (a `goAway`, then the close); Pipecat 1.14 resumes
the session on a new one, but does not act on the `goAway`, and the model does not finish on the new
connection what it was saying on the old one: the caller hears half a sentence. The host sees the
answer under way (the service's `TTSStartedFrame` until its `TTSStoppedFrame`), the close in Pipecat's
log (bot/vendor_end.py reads the same lines), and, once the resumed connection is up, asks the model
in the caller's stead, as realtime text, to say its answer again. An observer the host adds to the
user's worker (bot/watch.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from loguru import logger
from pipecat.frames.frames import InputTextRawFrame, TTSStartedFrame, TTSStoppedFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed

from bot.vendor_end import GEMINI_CLOSED, GEMINI_CONNECTED

ASK = "(The line dropped while you were answering. Please say your last answer again, from the start.)"
READY_SECONDS = 0.5  # the resumed connection's set-up done (Pipecat logs its connect before it)


class AnswerAgain(BaseObserver):
    def __init__(self, ask: Callable[[InputTextRawFrame], Awaitable[None]]) -> None:
        super().__init__()
        self._ask = ask  # queues the frame into the user's worker(s)
        self._answering = False
        self._cut = False
        self._asking: asyncio.Task[None] | None = None
        self.asked = 0

    async def on_push_frame(self, data: FramePushed) -> None:
        if type(data.source).__name__ != "GeminiLiveLLMService":
            return
        if isinstance(data.frame, TTSStartedFrame):
            self._answering = True
        elif isinstance(data.frame, TTSStoppedFrame):
            self._answering = False

    def logged(self, message: str) -> None:
        """A line of Pipecat's Gemini Live service."""
        if GEMINI_CLOSED.fullmatch(message) and self._answering:
            self._cut, self._answering = True, False
        elif message.startswith(GEMINI_CONNECTED) and self._cut:
            self._cut = False
            with contextlib.suppress(RuntimeError):  # logged outside the event loop: no session to ask in
                self._asking = asyncio.get_running_loop().create_task(self._again(), name="answer-again")

    async def _again(self) -> None:
        await asyncio.sleep(READY_SECONDS)
        logger.info("Gemini's connection ended mid-answer: asking the resumed session for the answer again")
        self.asked += 1
        try:
            await self._ask(InputTextRawFrame(ASK))
        except Exception:  # never the call: the caller can still ask again
            logger.exception("the answer cut by Gemini's connection could not be asked for again")
