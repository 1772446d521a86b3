"""ICE consent freshness (RFC 7675 §5.1) as the RFC has it, in place of aioice's own checks.

aioice gives each consent check 0.5 s, never resends it, and drops the connection after 6 late answers: a
caller (or this host) too busy to answer in time lost calls that were fine. Here each check is retransmitted
so a late answer still counts, and consent expires when no check sent in the last `CONSENT_TIMEOUT` seconds
was answered; a connection that loses it is marked (`lost_consent`). Figures: docs/bot.md, "ICE consent".
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
from typing import Any

from aioice import ice
from loguru import logger

CONSENT_TIMEOUT = 30.0  # RFC 7675 §5.1: seconds without an answer before consent expires
EXPIRY_TICK = 1.0  # seconds between looks at whether consent expired
CONSENT_RETRANSMISSIONS = 5  # a STUN request's RTO doubles from 0.5 s: its answer counts within 31.5 s
_LOST = "_voicefleet_consent_lost"  # set on an aioice Connection whose consent expired: the seconds unanswered


async def query_consent(self: ice.Connection) -> None:
    """aioice's `Connection.query_consent`, as RFC 7675 §5.1 has it (replaces it: `install`)."""
    assert self.remote_password is not None  # consent checks start once connect() has it, as aioice's do
    key = self.remote_password.encode("utf8")
    loop = asyncio.get_running_loop()
    answered = loop.time()  # when the latest request that got an answer was SENT (RFC 7675 §5.1)
    checks: set[asyncio.Task[Any]] = set()

    def done(sent: float, check: asyncio.Task[Any]) -> None:
        nonlocal answered
        checks.discard(check)
        if not check.cancelled() and check.exception() is None:  # TransactionError: unanswered
            answered = max(answered, sent)  # an old request's late answer does not renew consent past its age

    try:
        next_check = loop.time() + ice.CONSENT_INTERVAL * (0.8 + 0.4 * random.random())  # noqa: S311
        while True:
            # Expiry is looked at every EXPIRY_TICK, not only when checks go out (every 4-6 s).
            await asyncio.sleep(max(0.0, min(EXPIRY_TICK, next_check - loop.time())))
            if (unanswered := loop.time() - answered) >= CONSENT_TIMEOUT:
                logger.warning(f"ICE consent expired: no answer to its consent checks for {unanswered:.0f} s")
                setattr(self, _LOST, unanswered)
                self._query_consent_task = None
                await self.close()
                return
            if loop.time() < next_check:
                continue
            # aioice's own spread of the checks (RFC 7675 §5.1), not a secret: random is right here
            next_check = loop.time() + ice.CONSENT_INTERVAL * (0.8 + 0.4 * random.random())  # noqa: S311
            for pair in list(self._nominated.values()):  # each check waits for its answer while the next go out
                check = asyncio.ensure_future(pair.protocol.request(
                    self.build_request(pair, nominate=False), pair.remote_addr, integrity_key=key,
                    retransmissions=CONSENT_RETRANSMISSIONS))
                checks.add(check)
                check.add_done_callback(functools.partial(done, loop.time()))
    finally:
        for check in list(checks):
            check.cancel()


def install() -> bool:
    """aioice checks consent as RFC 7675 has it, for every connection made from now on in this process.
    A version of aioice (the project's lock chooses it) without what this relies on keeps aioice's own
    checks, with a warning: a bot that starts and may drop a late caller beats a bot that cannot start."""
    request = getattr(getattr(ice, "StunProtocol", None), "request", None)
    if not all(hasattr(ice.Connection, name) for name in ("query_consent", "build_request", "close")) \
            or request is None or "retransmissions" not in inspect.signature(request).parameters:
        logger.warning("aioice's Connection differs from the one this bot host knows: its own ICE consent checks "
                       "stay, which drop a caller that answers them over 0.5 s late (docs/bot.md, ICE consent)")
        return False
    ice.Connection.query_consent = query_consent  # type: ignore[method-assign]
    return True


def lost_consent(pc: Any) -> str | None:
    """Why the peer connection `pc` was lost, where its ICE consent expired; None otherwise (its peer
    closed it, or it was closed here)."""
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    for dtls in transports:
        if (unanswered := expired_after(getattr(getattr(dtls, "transport", None), "_connection", None))) is not None:
            return (f"ICE consent expired: the caller answered none of its consent checks for {unanswered:.0f} s "
                    "(a machine too busy to answer them, the caller's or this one)")
    return None


def expired_after(connection: object) -> float | None:
    """The seconds an aioice connection went unanswered before its consent expired; None if it did not."""
    unanswered = getattr(connection, _LOST, None)
    return unanswered if isinstance(unanswered, float) else None
