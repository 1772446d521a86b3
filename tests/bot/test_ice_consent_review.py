"""Review: RFC 7675 §5.1 keeps consent only while a response comes to "one of the STUN requests sent in the last
30 seconds". The bot host's checks date consent from when an answer arrives, not from when the request it answers
was sent, and keep each request open for 31.5 s (retransmitted): answers each older than the consent timeout,
released one after another (a peer gone quiet whose held answers an on-path party lets through slowly), keep the
bot sending media to that address up to 31.5 s plus a check's 6 s past the RFC's 30 s. Scaled down here: a consent
timeout of 1 s, a peer whose answers grow later and later, on two real aioice agents on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aioice import Connection

from bot import ice_consent
from tests.bot.test_ice_consent import closed, connected, consent  # noqa: F401 (its fixture)

SLOWING = 0.5  # each answer comes this share of the seconds since the peer began slowing after its request
BOUND = 12.0  # answers past the 1 s timeout from ~3 s on: the RFC's expiry comes by ~4 s; generous when loaded


def answering_slower_and_slower(connection: Connection) -> None:
    """Makes `connection` answer each check later than the one before: an answer keeps coming every ~0.15 s, and
    from ~3 s on each answers a request sent more than the 1 s consent timeout before it arrives."""
    answer = connection.request_received
    loop = asyncio.get_running_loop()
    began = loop.time()

    def received(*request: Any) -> None:
        loop.call_later(SLOWING * (loop.time() - began), lambda: answer(*request))

    connection.request_received = received  # type: ignore[method-assign]


@pytest.mark.usefixtures("consent")
def test_answers_only_to_requests_older_than_the_consent_timeout_let_consent_expire(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ice_consent, "CONSENT_TIMEOUT", 1.0)

    async def run() -> None:
        async for caller, bot in connected():
            answering_slower_and_slower(bot)
            assert await asyncio.wait_for(closed(caller), BOUND)  # TimeoutError: it still sends to that address

    asyncio.run(run())
