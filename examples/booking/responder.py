"""The booking flow (booking_flow.py) in the place of an LLM: a Pipecat `LLMService` that answers
each user turn of the context the user aggregator hands it.

Frames are what an LLM service pushes (`LLMFullResponseStartFrame`, `LLMTextFrame`,
`LLMFullResponseEndFrame`), so the assistant aggregator, RTVI's bot-output events, the TTS and
the recorder's transcript treat its replies as any model's. A goodbye ends the call once its
reply has been spoken (`EndWorkerFrame` downstream, behind the reply's frames).
"""

from __future__ import annotations

from dataclasses import fields

from booking_flow import BookingFlow, Reply
from pipecat.adapters.llm.services.open_ai_adapter import OpenAILLMAdapter
from pipecat.frames.frames import (
    EndWorkerFrame,
    Frame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    TTSSpeakFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext, standard_message_text
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import LLMService
from pipecat.services.settings import LLMSettings


class BookingResponder(LLMService):
    # The adapter Pipecat would pick (it imports it, and the OpenAI SDK under it, when the first
    # service is built): named here, it loads with the bot file, before a warm bot is claimed,
    # instead of holding the event loop for ~0.4 s of CPU between a call's answer and its ICE checks.
    adapter_class = OpenAILLMAdapter

    def __init__(self, flow: BookingFlow | None = None, **kwargs: object) -> None:
        # No model behind it: every setting an LLM would take is unsupported (None), as Pipecat asks.
        unsupported = {field.name: None for field in fields(LLMSettings)}
        super().__init__(settings=LLMSettings(**{**unsupported, "model": "booking-flow"}), **kwargs)  # type: ignore[arg-type]
        self.flow = flow or BookingFlow()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            await self._answer(self.flow.reply(_last_user_text(frame.context)))
        else:
            await self.push_frame(frame, direction)

    async def greet(self) -> None:
        """The first words of the call, spoken as they are (no user turn to answer)."""
        await self.push_frame(TTSSpeakFrame(self.flow.greeting().text))

    async def _answer(self, reply: Reply) -> None:
        await self.start_processing_metrics()
        await self.push_frame(LLMFullResponseStartFrame())
        await self._push_llm_text(reply.text)
        await self.push_frame(LLMFullResponseEndFrame())
        await self.stop_processing_metrics()
        if reply.ends_call:
            await self.push_frame(EndWorkerFrame(reason="the caller said goodbye"))


def _last_user_text(context: LLMContext) -> str:
    for message in reversed(context.messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return standard_message_text(message)
    return ""
