"""A real bot over real WebRTC: a sentence with a 300 ms pause is answered once, whole.

The offline tests (test_parrot_turns.py) prove the turn logic frame by frame; this one proves the
retraction survives the transport: the VAD ends the turn inside the pause, the reply started
there is taken back (the client gets RTVI `bot-interrupted`, the standard message for a cut-off
reply), and what the client hears after the sentence ends is one reply with both halves in it.
"""

from __future__ import annotations

from tests.bot.conftest import SpawnBot
from tests.support.speech_pauses import PAUSED_SENTENCE, load, pause_span
from tests.support.webrtc_client import WebRTCClient


async def test_a_sentence_with_a_pause_is_answered_once_with_both_halves(spawn_bot: SpawnBot) -> None:
    speech = load(PAUSED_SENTENCE)
    start, end = pause_span(speech.samples)
    second_half = (len(speech.samples) - end) / speech.sample_rate
    bot = spawn_bot("--connect-timeout", "30")
    async with WebRTCClient(bot.offer_url) as client:
        bot.next_event("connected", 10)
        result = await client.talk(PAUSED_SENTENCE, listen_seconds=15, until_reply=True)
        interrupted = await client.rtvi_message("bot-interrupted", timeout=5)
    assert interrupted is not None
    assert result.replied, result.summary()
    reply = [s for s in result.segments if s.start > (result.speech_end_at or 0)]
    span = reply[-1].end - reply[0].start  # loud segments split at the echo's quiet parts: take the span
    # Answering only the rest would play the beep, the pre-roll and the second half (~2.1 s) after
    # the end; the whole sentence's echo also holds the first half (~1.5 s) and the pause.
    assert span > second_half + 0.5 * start / speech.sample_rate, result.summary()
