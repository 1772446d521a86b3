"""The pre-auth flood: sockets with no credential (a Kubernetes warm pool's bots dial so) are let
through the handshake, so they hold places of their own until their hello is admitted
(BOT_CHANNEL_MAX_IDENTITY_ONLY), never the credentialed bots' channels, and one address opens only a
few a minute; past either, the socket is closed 1013 with the reason."""

from __future__ import annotations

import asyncio
import contextlib

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from botchannel.contract import Hello, encode
from dispatcher.channel.credentials import BotCredentials, BotGrant
from dispatcher.channel.identity import Unverified
from dispatcher.channel.identity_only_gate import PER_ADDRESS, WINDOW_SECONDS, IdentityOnlyGate
from dispatcher.settings import Settings
from tests.security.conftest import DEPLOYMENT_SECRET, WAIT, MakeDispatcher, dial
from tests.support.waiting import until


class HeldChecks:
    """The provider's identity-only check, held until the test lets it answer (a slow TokenReview)."""

    def __init__(self) -> None:
        self.asked = 0
        self.answer = asyncio.Event()

    async def grant(self, hello: Hello) -> BotGrant | str:
        self.asked += 1
        await self.answer.wait()
        return "refused by the test"


async def _credential_less(url: str, machine_id: str) -> ClientConnection:
    socket = await connect(url, proxy=None, open_timeout=WAIT)
    with contextlib.suppress(ConnectionClosed):  # a refused one is closed as it opens
        await socket.send(encode(Hello(machine_id=machine_id, identity="a.b.c")))
    return socket


async def _closed_with(socket: ClientConnection) -> tuple[int, str]:
    try:
        await asyncio.wait_for(socket.recv(), WAIT)
    except ConnectionClosed as closed:
        assert closed.rcvd is not None
        return closed.rcvd.code, closed.rcvd.reason
    raise AssertionError("the socket was not closed")


async def test_credential_less_sockets_wait_in_their_own_places_never_the_bots_channels(
        make_dispatcher: MakeDispatcher) -> None:
    settings = Settings(max_concurrent_sessions=50, bot_channel_token=DEPLOYMENT_SECRET, bot_channel_max_connections=2,
                        bot_channel_max_identity_only=2)
    d = await make_dispatcher(settings)
    channels = d.state.channels
    channels.identity = Unverified("the test dials by hand")  # (tests/support/hand_dialled.py)
    channels.identity_only = checks = HeldChecks()
    waiting = [await _credential_less(d.channel_url, f"pool-{n}") for n in range(2)]
    await until(lambda: checks.asked == 2, "both hellos being checked", timeout=WAIT)

    code, reason = await _closed_with(await _credential_less(d.channel_url, "pool-3"))
    assert code == 1013 and "BOT_CHANNEL_MAX_IDENTITY_ONLY" in reason
    credentials = BotCredentials(DEPLOYMENT_SECRET)
    bots = [await dial(d.channel_url, credentials.issue("session", f"s-{n}", 600),
                       Hello(machine_id=f"m-{n}", session_id=f"s-{n}")) for n in range(2)]
    assert all(bot is not None for bot in bots)  # every credentialed channel is still the bots'

    checks.answer.set()  # the held hellos refused: their places are free again
    for socket in waiting:
        await _closed_with(socket)
    await until(lambda: channels.identity_only_gate.pending == 0, "the places freed", timeout=WAIT)
    for bot in bots:
        assert bot is not None
        await bot.close()


async def test_one_address_opens_only_a_few_credential_less_sockets_a_minute(make_dispatcher: MakeDispatcher) -> None:
    d = await make_dispatcher(Settings(max_concurrent_sessions=50, bot_channel_token=DEPLOYMENT_SECRET))
    channels = d.state.channels
    channels.identity_only = checks = HeldChecks()
    checks.answer.set()  # each refused at once
    for n in range(PER_ADDRESS):
        code, reason = await _closed_with(await _credential_less(d.channel_url, f"pool-{n}"))
        assert code != 1013, reason
    code, reason = await _closed_with(await _credential_less(d.channel_url, "pool-over"))
    assert code == 1013 and "from this address" in reason
    assert checks.asked == PER_ADDRESS


def test_the_gate_forgets_an_addresses_dials_after_its_window_and_counts_each_address_apart() -> None:
    now = [1_000.0]
    gate = IdentityOnlyGate(100, clock=lambda: now[0])
    for _ in range(PER_ADDRESS):
        assert gate.refusal("10.0.0.1") is None
        gate.release()
    assert gate.refusal("10.0.0.1") is not None
    assert gate.refusal("10.0.0.2") is None  # another pod's address
    now[0] += WINDOW_SECONDS
    assert gate.refusal("10.0.0.1") is None
    assert gate.pending == 2



def test_a_dial_refused_for_want_of_a_place_does_not_spend_its_addresses_dials() -> None:
    """A flood from other addresses fills the places: a real bot's dials meanwhile cost no check, so
    they must not use up its few a minute, or it is locked out once the flood ends."""
    now = [1_000.0]
    gate = IdentityOnlyGate(1, clock=lambda: now[0])
    assert gate.refusal("10.0.0.9") is None  # the flood's socket holds the one place
    for _ in range(PER_ADDRESS + 2):
        assert "BOT_CHANNEL_MAX_IDENTITY_ONLY" in (gate.refusal("10.0.0.1") or "")
    gate.release()  # the flood's hello refused: its place is free
    assert gate.refusal("10.0.0.1") is None
