"""Who ended a WebRTC call, as the bot host reports it (bot/connection_end.py): a consent expiry its
bot's own block of the loop made is `bot_blocked`, one without it `connection_lost`; a close its bot's
code made (a real `SmallWebRTCConnection`'s `disconnect`) is `bot_closed`, the host's own close at the
session's end is not."""

from __future__ import annotations

import asyncio

from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

from bot.connection_end import ClosedHere, consent_end
from bot.ice_consent import CONSENT_TIMEOUT
from bot.lifecycle import EndReason, SessionLifecycle
from bot.own_block import OwnBlocks

LOST = "ICE consent expired: the caller answered none of its consent checks for 31 s"
NOW = 1_000_100.0


def blocks(*noted: tuple[float, float, float]) -> OwnBlocks:
    own = OwnBlocks()
    for ended_at, gap, cpu in noted:
        own.note(ended_at, gap, cpu)
    return own


def test_a_consent_expiry_after_the_bots_long_block_is_the_bots() -> None:
    reason, detail = consent_end(LOST, blocks((NOW - 1.0, 31.0, 30.6)), now=NOW)
    assert reason is EndReason.BOT_BLOCKED
    assert detail.startswith("the bot's own code blocked its event loop for 31 s") and LOST in detail


def test_a_consent_expiry_without_such_a_block_is_the_connections() -> None:
    assert consent_end(LOST, None, now=NOW) == (EndReason.CONNECTION_LOST, LOST)
    assert consent_end(LOST, blocks(), now=NOW) == (EndReason.CONNECTION_LOST, LOST)
    # a short block, or a long one long before the checks went unanswered: not what expired it
    assert consent_end(LOST, blocks((NOW - 1.0, 3.0, 2.9)), now=NOW)[0] is EndReason.CONNECTION_LOST
    assert consent_end(LOST, blocks((NOW - 3 * CONSENT_TIMEOUT, 31.0, 30.6)), now=NOW)[0] is EndReason.CONNECTION_LOST
    # a long late wake whose thread hardly ran: a starved or paused host, not a block (bot/own_block.py)
    assert consent_end(LOST, blocks((NOW - 1.0, 31.0, 0.2)), now=NOW)[0] is EndReason.CONNECTION_LOST


async def test_a_disconnect_before_the_session_ended_is_the_bots_close() -> None:
    lifecycle = SessionLifecycle()
    connection = SmallWebRTCConnection()
    closed_here = ClosedHere(lifecycle)
    closed_here.watch(connection)
    await connection.disconnect()
    assert closed_here.closed


async def test_the_hosts_own_close_after_the_end_is_not() -> None:
    lifecycle = SessionLifecycle()
    connection = SmallWebRTCConnection()
    closed_here = ClosedHere(lifecycle)
    closed_here.watch(connection)
    lifecycle.end(EndReason.PEER_DISCONNECTED)
    await asyncio.wait_for(connection.disconnect(), 10)
    assert not closed_here.closed
