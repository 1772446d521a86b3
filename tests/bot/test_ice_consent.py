"""ICE consent (RFC 7675) lasts while the peer answers its checks, late or not: two real aioice agents
on loopback, one answering every check late, as a machine too busy to answer in 0.5 s does. aioice's
own checks gave up on such a peer after 6 of them; the bot host's wait for late answers, and expire
only when none came for the consent timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aioice.ice
import pytest
from aioice import Connection, ConnectionClosed
from aiortc import RTCPeerConnection

from bot import ice_consent

CHECK_INTERVAL = 0.1  # aioice's 5 s between checks, shortened: the checks' answers are what is tested
LATE = 2.0  # past aioice's 0.5 s for an answer; a busy machine's answer
WAIT = 60.0  # bound on any wait: generous for a loaded machine
ANSWERS = 40  # late answers, ~0.1 s apart: aioice's own checks gave up after 6 unanswered in time, ~0.6 s apart


@pytest.fixture
def consent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", CHECK_INTERVAL)
    monkeypatch.setattr(aioice.ice.Connection, "query_consent", aioice.ice.Connection.query_consent)  # restored after
    ice_consent.install()


async def connected() -> AsyncIterator[tuple[Connection, Connection]]:
    caller, bot = Connection(ice_controlling=True), Connection(ice_controlling=False)
    try:
        await asyncio.gather(caller.gather_candidates(), bot.gather_candidates())
        for local, remote in ((caller, bot), (bot, caller)):
            local.remote_username, local.remote_password = remote.local_username, remote.local_password
            for candidate in remote.local_candidates:
                await local.add_remote_candidate(candidate)
            await local.add_remote_candidate(None)
        await asyncio.wait_for(asyncio.gather(caller.connect(), bot.connect()), WAIT)
        yield caller, bot
    finally:
        await asyncio.gather(caller.close(), bot.close())


def answering_late(connection: Connection, answered: asyncio.Queue[None], late: float | None) -> None:
    """Makes `connection` answer each check `late` seconds after it came (None: never), noting each."""
    answer = connection.request_received
    loop = asyncio.get_running_loop()

    def received(*request: Any) -> None:
        if late is not None:
            loop.call_later(late, lambda: (answer(*request), answered.put_nowait(None)))

    connection.request_received = received  # type: ignore[method-assign]


async def closed(connection: Connection) -> bool:
    return isinstance(await connection.get_event(), ConnectionClosed)


@pytest.mark.usefixtures("consent")
def test_a_peer_that_answers_every_consent_check_late_keeps_the_connection() -> None:
    async def run() -> None:
        async for caller, bot in connected():
            answered: asyncio.Queue[None] = asyncio.Queue()
            answering_late(bot, answered, LATE)
            ending = asyncio.ensure_future(closed(caller))
            for _ in range(ANSWERS):
                done, _pending = await asyncio.wait({ending, asyncio.ensure_future(answered.get())}, timeout=WAIT,
                                                    return_when=asyncio.FIRST_COMPLETED)
                assert ending not in done, "the caller gave up a connection whose peer answered every check"
                assert done, "no check answered"
            assert ice_consent.expired_after(caller) is None
            ending.cancel()

    asyncio.run(run())


@pytest.mark.usefixtures("consent")
def test_a_peer_that_answers_no_check_loses_its_consent_and_says_for_how_long(monkeypatch: pytest.MonkeyPatch
                                                                             ) -> None:
    monkeypatch.setattr(ice_consent, "CONSENT_TIMEOUT", 1.0)

    async def run() -> None:
        async for caller, bot in connected():
            answering_late(bot, asyncio.Queue(), None)
            assert await asyncio.wait_for(closed(caller), WAIT)
            unanswered = ice_consent.expired_after(caller)
            assert unanswered is not None and unanswered >= 1.0
            assert ice_consent.expired_after(bot) is None  # its own checks were answered

    asyncio.run(run())


@pytest.mark.usefixtures("consent")
def test_a_peer_connection_whose_consent_expired_says_so_one_its_peer_closed_does_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What the bot host's session end reads (bot/webrtc_mode.py): `connection_lost` with this detail."""
    monkeypatch.setattr(ice_consent, "CONSENT_TIMEOUT", 1.0)

    async def call() -> tuple[RTCPeerConnection, RTCPeerConnection]:
        caller, bot = RTCPeerConnection(), RTCPeerConnection()
        caller.createDataChannel("chat")
        closed = asyncio.Event()
        bot.on("connectionstatechange", lambda: bot.connectionState in ("closed", "failed") and closed.set())
        bot.closed = closed  # type: ignore[attr-defined]
        await caller.setLocalDescription(await caller.createOffer())
        await bot.setRemoteDescription(caller.localDescription)
        await bot.setLocalDescription(await bot.createAnswer())
        await caller.setRemoteDescription(bot.localDescription)
        connected = asyncio.Event()
        bot.on("connectionstatechange", lambda: bot.connectionState == "connected" and connected.set())
        if bot.connectionState != "connected":
            await asyncio.wait_for(connected.wait(), WAIT)
        return caller, bot

    async def run() -> None:
        caller, bot = await call()
        assert caller.sctp is not None
        # The caller stops answering: a machine that went quiet without hanging up.
        caller.sctp.transport.transport._connection.request_received = lambda *request: None
        await asyncio.wait_for(bot.closed.wait(), WAIT)  # type: ignore[attr-defined]
        lost = ice_consent.lost_consent(bot)
        assert lost is not None and lost.startswith("ICE consent expired: the caller answered none"), lost
        await caller.close()

        caller, bot = await call()
        await caller.close()  # a hang-up: its close reaches the bot
        await asyncio.wait_for(bot.closed.wait(), WAIT)  # type: ignore[attr-defined]
        assert ice_consent.lost_consent(bot) is None
        await bot.close()

    asyncio.run(run())


def test_an_aioice_it_does_not_know_keeps_its_own_checks_and_the_bot_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A project's lock may pin another aioice: the bot still starts, on aioice's own consent checks."""
    own = aioice.ice.Connection.query_consent
    monkeypatch.setattr(aioice.ice.Connection, "query_consent", own)  # restored after

    async def request(self: object, message: object, addr: object) -> None: ...  # no `retransmissions`

    monkeypatch.setattr(aioice.ice.StunProtocol, "request", request)
    assert ice_consent.install() is False
    assert aioice.ice.Connection.query_consent is own
