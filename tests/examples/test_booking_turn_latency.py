"""The bot host's own turn latency on a real Pipecat pipeline (the booking line's: Silero VAD,
PocketSphinx, Pipecat's user aggregator, eSpeak NG): from the end of the caller's speech, as the
VAD heard it, to the bot's first audio out, which is what Pipecat's own `UserBotLatencyObserver`
measures. The host's observer (bot/conversation.py) sees the same frames; Pipecat broadcasts its
turn frames both ways, and taking the upstream copy of `UserStoppedSpeakingFrame` had timed each
turn from the transcript, not from the caller's silence (tens of ms where the caller waited ~0.5 s)."""

from __future__ import annotations

from booking_line import VAD_STOP_SECS, build_pipeline
from pipecat.observers.user_bot_latency_observer import UserBotLatencyObserver
from pipecat.tests.utils import run_test
from responder import BookingResponder

from bot.conversation import ConversationWatch
from tests.support.booking_caller import RealTime, Speaker, caller_says

# Pipecat's observer reads the frames' own times, the host's when each was pushed: both mark the
# same two events, a few milliseconds apart at most on a loaded host.
SAME_EVENTS = 0.05


async def test_the_hosts_turn_latency_runs_from_the_callers_silence_to_the_bots_first_audio() -> None:
    host, pipecats = ConversationWatch(), UserBotLatencyObserver()
    measured: list[float] = []

    @pipecats.event_handler("on_latency_measured")  # type: ignore[untyped-decorator]  # Pipecat's has no types
    async def keep(_observer: object, seconds: float) -> None:
        measured.append(seconds)

    await run_test(build_pipeline(RealTime(), Speaker(), BookingResponder()),
                   frames_to_send=caller_says("I would like to book a table for two people tomorrow at seven"),
                   observers=[host, pipecats])
    figures = host.figures("peer_disconnected")
    assert figures is not None and figures["caller_turns"] == 1, figures  # one turn, not its two copies
    assert len(measured) == 1 and len(figures["latencies"]) == 1, (measured, figures)
    # The caller waited at least the VAD's silence before the bot could know the turn was over.
    assert figures["latencies"][0] >= VAD_STOP_SECS, (figures, measured)
    assert abs(figures["latencies"][0] - measured[0]) <= SAME_EVENTS, (figures, measured)
