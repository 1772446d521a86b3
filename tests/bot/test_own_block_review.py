"""Review of the bot's own-block report (bot/own_block.py, bot/connection_end.py): what a faulty bot can
still hide. Each test here failed on the code as merged (it kept the first 100 blocks only)."""

from __future__ import annotations

from bot.connection_end import consent_end
from bot.lifecycle import EndReason
from bot.own_block import OwnBlocks
from botchannel.conversation import MAX_BLOCKS

LOST = "ICE consent expired: the caller answered none of its consent checks for 31 s"
NOW = 1_000_000.0


def test_the_block_that_expired_consent_is_the_bots_even_after_many_short_ones() -> None:
    own = OwnBlocks()
    # A bot that runs ~1 s of CPU on its loop for each answer, every 5 s, for the call's first minutes:
    # each turn still passes (1 s late), so nothing failed yet.
    for n in range(MAX_BLOCKS):
        own.note(NOW - 1_000.0 + 5.0 * n, 1.2, 1.1)
    # Then one 31-s block: no consent check answered, the connection expires as the loop resumes.
    own.note(NOW - 0.5, 31.0, 30.7)
    assert consent_end(LOST, own, now=NOW)[0] is EndReason.BOT_BLOCKED
    # and the report the eval reads names it too (the bot's failure, not a lost connection)
    assert any(seconds >= 30.0 for _, seconds, _ in own.report())
