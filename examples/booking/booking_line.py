"""The booking line's pipeline, apart from its transport: an LLM bot's shape with offline parts.

transport in → VAD → speech to text (listening.py) → keypad (a phone call's keys, as text) → user
aggregator → responder (responder.py, where an LLM would be) → text to speech (voice.py) → transport
out → assistant aggregator. The recogniser and the voice load at import: a warm bot has paid for
them before its session.
"""

from __future__ import annotations

from booking_flow import CALLER_PHRASES
from listening import PocketSphinxSTTService, recogniser
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.dtmf_aggregator import DTMFAggregator
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair, LLMUserAggregatorParams
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from responder import BookingResponder
from voice import EspeakTTSService, espeak

# The VAD stops 0.2 s after the last voiced frame (long enough to hear "for two … people" as one
# turn); the turn then ends once the transcript is in, at least 0.05 s after that stop. Decoding
# takes 0.1-0.2 s, so the transcript is what the turn waits for: a longer floor (it was 0.2 s) only
# added to every answer's latency (docs/performance.md, "The booking line").
VAD_STOP_SECS = 0.2
TURN_END_SECS = 0.05
# Keys a caller presses are one turn once they pause this long, or at once on `#`.
KEYPAD_PAUSE_SECS = 1.0

RECOGNISER = recogniser(CALLER_PHRASES)
VOICE = espeak()


def build_pipeline(source: FrameProcessor, sink: FrameProcessor, responder: BookingResponder) -> Pipeline:
    """`source` and `sink` are the transport's input and output (or a test's stand-ins)."""
    aggregators = LLMContextAggregatorPair(
        LLMContext(),
        user_params=LLMUserAggregatorParams(
            user_turn_strategies=UserTurnStrategies(
                stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=TURN_END_SECS)]
            )
        ),
    )
    return Pipeline(
        [
            source,
            VADProcessor(vad_analyzer=SileroVADAnalyzer(params=VADParams(stop_secs=VAD_STOP_SECS))),
            PocketSphinxSTTService(recogniser=RECOGNISER),
            DTMFAggregator(timeout=KEYPAD_PAUSE_SECS, prefix=""),
            aggregators.user(),
            responder,
            EspeakTTSService(engine=VOICE),
            sink,
            aggregators.assistant(),
        ]
    )
