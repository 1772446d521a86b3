"""Who ended a WebRTC call the bot host saw close: its peer, the bot's own code, or neither.

- Its ICE consent expired (bot/ice_consent.py): no consent check was answered for `CONSENT_TIMEOUT`.
  A machine too busy to answer them (the caller's, or this one) does that, and so does a bot whose own
  code blocked this host's event loop, which then neither sent the checks nor read their answers: when
  such a block (bot/own_block.py) lasted at least `BLOCKED_SHARE` of the timeout, the end is the bot's
  (`bot_blocked`), not the connection's (`connection_lost`).
- The bot's own code closed it (its transport's `disconnect`, as its pipeline's end does): `bot_closed`,
  whether or not the caller saw the close arrive.
- Otherwise its peer closed it: `peer_disconnected`.
"""

from __future__ import annotations

import time
from typing import Any

from bot.ice_consent import CONSENT_TIMEOUT, EXPIRY_TICK
from bot.lifecycle import EndReason
from bot.own_block import OwnBlocks

# A block this share of the consent timeout held the checks unanswered for most of it: the bot's end.
BLOCKED_SHARE = 0.5


def consent_end(lost: str, blocks: OwnBlocks | None, now: float | None = None) -> tuple[EndReason, str]:
    """The end of a connection whose consent expired (`lost`: how, in words), with its detail."""
    now = time.time() if now is None else now
    longest = 0.0 if blocks is None else blocks.longest(since=now - CONSENT_TIMEOUT - 2 * EXPIRY_TICK)
    if longest >= BLOCKED_SHARE * CONSENT_TIMEOUT:
        return EndReason.BOT_BLOCKED, (f"the bot's own code blocked its event loop for {longest:.0f} s, so its ICE "
                                       f"consent checks went unanswered ({lost})")
    return EndReason.CONNECTION_LOST, lost


class ClosedHere:
    """Whether the bot's own code closed a connection: its `disconnect` called before the session ended."""

    def __init__(self, ended: Any) -> None:
        self._ended = ended  # the session's lifecycle: its host's own close comes once it ended
        self.closed = False

    def watch(self, connection: Any) -> None:
        """Notes a call of the connection's `disconnect` (a Pipecat `SmallWebRTCConnection`'s)."""
        disconnect = connection.disconnect

        async def noted() -> None:
            if not self._ended.ended:
                self.closed = True
            await disconnect()

        connection.disconnect = noted
