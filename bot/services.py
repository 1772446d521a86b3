"""The keyed pipeline's middle: Deepgram STT → OpenAI LLM (with context aggregators) → Cartesia TTS.

Imported only when all three API keys are set, so the keyless bot never pays for these imports.
Constructing the services touches no network; they connect when the pipeline starts.
"""

from __future__ import annotations

from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.cartesia.tts import CartesiaTTSService
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.openai.llm import OpenAILLMService

from bot.config import ServiceSettings

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly voice assistant. Your answers are spoken aloud, so keep them short, "
    "plain sentences without lists, markdown or emoji."
)
# Cartesia has no default voice: without one the TTS cannot speak. This is one of its stock
# English voices; CARTESIA_VOICE_ID overrides it.
DEFAULT_CARTESIA_VOICE_ID = "71a7ad14-091c-4e8e-a314-022ece01c121"
CARTESIA_API_URL = "https://api.cartesia.ai"  # CARTESIA_API_URL overrides it


def cartesia_websocket_url(api_url: str) -> str:
    """CARTESIA_API_URL is the API's base, as Cartesia's SDK takes it (`https://api.cartesia.ai`);
    the streaming TTS lives at `/tts/websocket` on the same host, over ws(s)."""
    scheme, _, rest = api_url.partition("://")
    ws_scheme = {"https": "wss", "http": "ws"}.get(scheme, scheme)
    return f"{ws_scheme}://{rest.rstrip('/')}/tts/websocket"


class ServiceProcessors:
    """The processors that go between the VAD and the transport output, in pipeline order."""

    def __init__(self, settings: ServiceSettings) -> None:
        stt_settings = DeepgramSTTService.Settings()
        if settings.deepgram_model:
            stt_settings.model = settings.deepgram_model
        # Pipecat derives the WebSocket and REST URLs from one base (ws/http keep it unencrypted).
        self.stt = DeepgramSTTService(
            api_key=settings.deepgram_api_key, settings=stt_settings, base_url=settings.deepgram_url or ""
        )

        llm_settings = OpenAILLMService.Settings(system_instruction=settings.system_prompt or DEFAULT_SYSTEM_PROMPT)
        if settings.openai_model:
            llm_settings.model = settings.openai_model
        self.llm = OpenAILLMService(
            api_key=settings.openai_api_key, settings=llm_settings, base_url=settings.openai_base_url
        )

        tts_settings = CartesiaTTSService.Settings(voice=settings.cartesia_voice_id or DEFAULT_CARTESIA_VOICE_ID)
        if settings.cartesia_model:
            tts_settings.model = settings.cartesia_model
        self.tts = CartesiaTTSService(
            api_key=settings.cartesia_api_key,
            settings=tts_settings,
            url=cartesia_websocket_url(settings.cartesia_url or CARTESIA_API_URL),
        )

        self.context = LLMContext()
        self.aggregators = LLMContextAggregatorPair(self.context)

    def before_output(self) -> list[FrameProcessor]:
        return [self.stt, self.aggregators.user(), self.llm, self.tts]

    def after_output(self) -> list[FrameProcessor]:
        # The assistant aggregator follows the output so the context records what was played.
        return [self.aggregators.assistant()]
