"""A pool bot's channel is one across the replicas (a real redis-server between them): a copy of its
pod's token that dials another replica is refused there, idle or as the session's bot, so a start's
claim is handed to the real bot alone, whichever replica started it; once the real bot's link
closes, its re-dial is admitted at any replica."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest

from dispatcher.channel.link_hold import HOLD_SECONDS, RENEW_EVERY_SECONDS
from dispatcher.machines.bot_environment import session_assignment
from dispatcher.machines.k8s.sandbox import SandboxClaims
from dispatcher.store.client import DEFAULT_PREFIX, StoreSettings
from dispatcher.store.coordination import Claims, LinkAdmission
from dispatcher.store.redis_coordination import RedisCoordination
from dispatcher.store.secrets_vault import MemoryVault
from dispatcher.store.unavailable import StoreUnavailable
from tests.dispatcher.machines.test_k8s import spec
from tests.dispatcher.machines.test_k8s_pool_redial import go_silent, redial, refused
from tests.dispatcher.machines.test_k8s_sandbox import add_pool, env, warm_running
from tests.dispatcher.machines.test_k8s_sandbox_warm import Dispatcher, idle_pool_bot
from tests.fakes.k8s_sandbox import FakeAgentSandbox
from tests.support.redis_server import RedisServer
from tests.support.waiting import until


def held(fake: FakeAgentSandbox, pod: str) -> str:
    """What the pod's one channel is held as in the store: its name and the uid its token names."""
    return f"{pod}/{fake.pods[pod]['metadata']['uid']}"


def store_prefix(request: pytest.FixtureRequest) -> str:
    """The test's own keys in the module's store (its pods' names repeat from test to test)."""
    return f"{DEFAULT_PREFIX}{hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]}:"


@pytest.fixture
async def replicas(server: RedisServer, fake_k8s_sandbox: FakeAgentSandbox,
                   request: pytest.FixtureRequest) -> AsyncIterator[tuple[Dispatcher, Dispatcher]]:
    """Two replicas of one deployment: one store, one vault for the sessions' values."""
    prefix = store_prefix(request)
    coordinations = [RedisCoordination(StoreSettings(url=server.url, password=server.password, replica_id=name,
                                                     prefix=prefix, message_secret=server.message_secret,
                                                     timeout_seconds=5.0, lease_seconds=3.0))
                     for name in ("r-a", "r-b")]
    vault = MemoryVault()
    a, b = (Dispatcher(SandboxClaims.from_env(env(fake_k8s_sandbox)), vault, c.claims) for c in coordinations)
    yield a, b
    for replica in (a, b):
        await replica.aclose()
    for coordination in coordinations:
        await coordination.aclose()


async def test_a_copy_of_the_pods_token_at_another_replica_is_refused_and_never_handed_the_session(
        replicas: tuple[Dispatcher, Dispatcher], fake_k8s_sandbox: FakeAgentSandbox) -> None:
    a, b = replicas
    fake = fake_k8s_sandbox
    warm, bot = await idle_pool_bot(a, fake)  # the real bot, idle at a
    copy = redial(b, fake, warm)  # the copy, idle at b
    await until(lambda: refused(b, copy), "the copy refused at the other replica", timeout=20)
    assert b.channels.idle() == []

    s = spec()
    await b.start(s)  # the start reaches b, whose watch sees the claim too
    await until(lambda: len(bot.assigns()) == 1, "the session handed to the real bot", timeout=30)
    assert bot.assigns()[0]["params"] == session_assignment(s).params()

    late = redial(b, fake, warm)  # the copy, now with the pod's session: no second channel for it
    await until(lambda: refused(b, late), "the copy's hello for the session refused", timeout=20)
    assert copy.assigns() == [] and late.assigns() == [] and b.channels.link_for(s.session_id) is None


@pytest.mark.parametrize("old_link", ["dropped", "half-open"])
async def test_the_bots_redial_with_its_key_at_another_replica_takes_its_channel_and_its_sessions_there(
        replicas: tuple[Dispatcher, Dispatcher], fake_k8s_sandbox: FakeAgentSandbox, old_link: str) -> None:
    a, b = replicas
    fake = fake_k8s_sandbox
    warm, first = await idle_pool_bot(a, fake)
    go_silent(first)
    dropping = redial(a, fake, warm, first.resume_key())  # the real bot's re-dial at a, with its key
    await until(dropping.welcomed, "welcomed at a", timeout=20)
    [older] = a.channels.idle()
    if old_link == "dropped":
        dropping.drop()
        await until(a.serving[-1].done, "the drop seen at a, and its hold let go", timeout=20)
    else:
        go_silent(dropping)  # a still holds the pod's channel: the key takes it over
    again = redial(b, fake, warm, dropping.resume_key())  # through the Service, to the other replica
    await until(lambda: again.welcomed() or b.serving[-1].done(), "b's answer", timeout=30)
    assert again.welcomed()
    await until(older.closed.is_set, "a's older link closed", timeout=RENEW_EVERY_SECONDS + 30)
    copy = redial(a, fake, warm)  # a copy, without the key, back at a
    await until(lambda: refused(a, copy), "the copy refused at a", timeout=20)
    s = spec()
    await a.start(s)  # started at a; handed where the bot's channel is
    await until(lambda: len(again.assigns()) == 1, "the session handed at b", timeout=30)
    assert dropping.assigns() == [] and copy.assigns() == []


async def test_a_pool_bots_hello_is_refused_while_the_replicas_store_does_not_answer(
        fake_k8s_sandbox: FakeAgentSandbox, server: RedisServer, unused_tcp_port: int) -> None:
    fake = fake_k8s_sandbox
    silent = RedisCoordination(StoreSettings(url=f"redis://127.0.0.1:{unused_tcp_port}", password=server.password,
                                             replica_id="r-silent", message_secret=server.message_secret,
                                             timeout_seconds=1.0, lease_seconds=3.0))
    replica = Dispatcher(SandboxClaims.from_env(env(fake)), MemoryVault(), silent.claims)
    try:
        add_pool(fake, 1)
        [warm] = await warm_running(fake, 1)
        bot = replica.dial(fake, warm)
        await until(lambda: refused(replica, bot), "the hello refused", timeout=30)
        assert replica.channels.idle() == []
    finally:
        await replica.aclose()
        await silent.aclose()


async def test_a_link_whose_hold_another_replica_took_is_closed_at_its_renewal(
        fake_k8s_sandbox: FakeAgentSandbox, server: RedisServer) -> None:
    """Only a store that lost the record (a failover) lets another replica take it: the older link goes."""
    fake = fake_k8s_sandbox
    store = RedisCoordination(StoreSettings(url=server.url, password=server.password, replica_id="r-a",
                                            prefix=f"{DEFAULT_PREFIX}renewal:", message_secret=server.message_secret,
                                            timeout_seconds=5.0, lease_seconds=3.0))
    replica = Dispatcher(SandboxClaims.from_env(env(fake)), MemoryVault(), store.claims)
    try:
        warm, _ = await idle_pool_bot(replica, fake)
        [link] = replica.channels.idle()
        await store.store.redis.set(store.store.key("link", held(fake, warm)), "r-b")  # another replica's now
        await until(link.closed.is_set, "the link closed at its next renewal", timeout=RENEW_EVERY_SECONDS + 20)
        # not let go: not its own
        assert await store.store.redis.get(store.store.key("link", held(fake, warm))) == "r-b"
    finally:
        await replica.aclose()
        await store.aclose()


class StoreView:
    """One replica's view of the store's link records: the store's own answers, unless a test's view
    overrides a call."""

    def __init__(self, claims: Claims) -> None:
        self.claims = claims

    async def admit_link(self, machine_id: str, presented: str | None, new: str, hold_seconds: float,
                         key_seconds: float) -> LinkAdmission:
        return await self.claims.admit_link(machine_id, presented, new, hold_seconds, key_seconds)

    async def keep_link(self, machine_id: str, key: str, hold_seconds: float, key_seconds: float) -> bool:
        return await self.claims.keep_link(machine_id, key, hold_seconds, key_seconds)

    async def let_go_link(self, machine_id: str) -> None:
        await self.claims.let_go_link(machine_id)


class CutOff(StoreView):
    """It answers until `cut`, then times out: that replica alone cut off from the store."""

    cut = False

    async def keep_link(self, machine_id: str, key: str, hold_seconds: float, key_seconds: float) -> bool:
        if self.cut:
            raise StoreUnavailable("the store did not answer: TimeoutError")
        return await super().keep_link(machine_id, key, hold_seconds, key_seconds)

    async def let_go_link(self, machine_id: str) -> None:
        if self.cut:
            raise StoreUnavailable("the store did not answer: TimeoutError")
        await super().let_go_link(machine_id)


async def test_a_replica_cut_off_from_the_store_closes_its_link_before_its_hold_can_lapse(
        replicas: tuple[Dispatcher, Dispatcher], fake_k8s_sandbox: FakeAgentSandbox, server: RedisServer,
        request: pytest.FixtureRequest) -> None:
    a, _ = replicas
    fake = fake_k8s_sandbox
    warm, _ = await idle_pool_bot(a, fake)
    [link] = a.channels.idle()
    view = CutOff(a.channels.link_hold._claims)
    a.channels.link_hold._claims = view  # type: ignore[assignment]
    view.cut = True
    await until(link.closed.is_set, "the unrenewed link closed", timeout=HOLD_SECONDS + 30)
    # Closed while the store still gave the pod to this replica (it could not let go, being cut off): no
    # other replica could have admitted the pod while this link was open.
    assert server.admin().get(f"{store_prefix(request)}link:{held(fake, warm)}") == "r-a"


async def test_an_older_links_end_does_not_free_the_hold_a_newer_link_of_its_pod_just_took(
        replicas: tuple[Dispatcher, Dispatcher], fake_k8s_sandbox: FakeAgentSandbox, server: RedisServer,
        request: pytest.FixtureRequest) -> None:
    a, _ = replicas
    fake = fake_k8s_sandbox
    warm, first = await idle_pool_bot(a, fake)
    [older] = a.channels.idle()
    go_silent(first)  # half-open: the real bot dials again, and the older link ends meanwhile
    claims = a.channels.link_hold._claims

    class OlderEndsDuringTheAdmission(StoreView):
        async def admit_link(self, machine_id: str, presented: str | None, new: str, hold_seconds: float,
                             key_seconds: float) -> LinkAdmission:
            answer = await super().admit_link(machine_id, presented, new, hold_seconds, key_seconds)
            if not older.closed.is_set():
                await older.disconnect()
                await asyncio.sleep(0.2)  # its serve's end runs now, between this admission and the register
            return answer

    a.channels.link_hold._claims = OlderEndsDuringTheAdmission(claims)  # type: ignore[assignment]
    again = redial(a, fake, warm, first.resume_key())
    await until(again.welcomed, "the re-dial welcomed", timeout=30)
    await until(lambda: older.closed.is_set() and len(a.serving) >= 2 and a.serving[0].done(), "the older link's end",
                timeout=20)
    # still held: its new link is here
    assert server.admin().get(f"{store_prefix(request)}link:{held(fake, warm)}") == "r-a"


async def test_a_key_the_store_lost_is_never_adopted_from_a_hello_and_is_written_back_by_the_bots_link(
        replicas: tuple[Dispatcher, Dispatcher], fake_k8s_sandbox: FakeAgentSandbox, server: RedisServer,
        request: pytest.FixtureRequest) -> None:
    a, b = replicas
    fake = fake_k8s_sandbox
    warm, bot = await idle_pool_bot(a, fake)
    [link] = a.channels.idle()
    key = f"{store_prefix(request)}linkkey:{held(fake, warm)}"
    admin = server.admin()
    kept = admin.get(key)
    admin.delete(key)  # a failover to a replica that had not caught up
    guess = redial(a, fake, warm, "k" * 32)  # a copy presenting a key of its own making
    await until(lambda: refused(a, guess), "a made-up key refused", timeout=20)
    assert not link.closed.is_set() and admin.get(key) is None  # not adopted
    await until(lambda: admin.get(key) == kept, "the key written back by the link's keeper",
                timeout=RENEW_EVERY_SECONDS + 30)
    copy = redial(b, fake, warm)
    await until(lambda: refused(b, copy), "a keyless copy refused again", timeout=20)
    assert not link.closed.is_set() and bot.assigns() == [] and guess.assigns() == [] and copy.assigns() == []
