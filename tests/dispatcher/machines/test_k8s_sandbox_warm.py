"""The `agent-sandbox` warm path, in-process: the pool's bots dial with their pod's identity alone and wait
idle on the channel; a start's claim adopts one (the fake controller, as strict as kubernetes-sigs/agent-sandbox's:
the Sandbox's owner moves from the pool to the claim, the ~2 s wait for a warm candidate, then cold) and its
idle bot is handed the session's values over the channel, once; a bot that dials after its pod was adopted is
admitted as its session's, and no other pod's hello gets that session's values; an identity-only hello from
anything but the pool's pods, or in any other mode or provider, is refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import pytest

from botchannel.contract import Hello, Reply, Request, encode, parse_frame
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.credentials import BotCredentials
from dispatcher.channel.identity import Unverified
from dispatcher.channel.session_secrets import SessionSecrets
from dispatcher.machines.base import LaunchSpec
from dispatcher.machines.bot_environment import session_assignment
from dispatcher.machines.k8s.provider import K8sMachines
from dispatcher.machines.k8s.sandbox import SandboxClaims
from dispatcher.store.coordination import Claims
from dispatcher.store.local import LocalClaims
from dispatcher.store.secrets_vault import MemoryVault
from tests.dispatcher.machines.test_k8s import spec
from tests.dispatcher.machines.test_k8s_sandbox import add_pool, env, warm_running
from tests.fakes.k8s_sandbox import POOL, FakeAgentSandbox
from tests.support.waiting import until


class PoolBotSocket:
    """A pool bot's end of its channel: says its identity-only hello, answers `assign` with ok."""

    def __init__(self, hello: Hello) -> None:
        self.inbox: asyncio.Queue[str] = asyncio.Queue()
        self.inbox.put_nowait(encode(hello))
        self.sent: list[dict[str, object]] = []

    async def send_text(self, data: str) -> None:
        self.sent.append(json.loads(data))
        frame = parse_frame(data)
        if isinstance(frame, Request):
            self.inbox.put_nowait(encode(Reply(frame.id, result={"ok": True})))

    async def receive_text(self) -> str:
        return await self.inbox.get()

    async def close(self, code: int = 1000) -> None:
        pass

    def assigns(self) -> list[dict[str, object]]:
        return [f for f in self.sent if f.get("method") == "assign"]

    def welcomed(self) -> bool:
        return any(f.get("type") == "welcome" for f in self.sent)

    def resume_key(self) -> str | None:
        """The key its welcome gave it, which the real bot presents when it dials again."""
        return next((str(f["resume"]) for f in self.sent if f.get("type") == "welcome" and "resume" in f), None)


class Dispatcher:
    """The provider and the channel, wired as dispatcher/wiring.py wires them."""

    def __init__(self, machines: SandboxClaims | K8sMachines, values: MemoryVault | None = None,
                 claims: Claims | None = None) -> None:
        self.machines = machines
        self.channels = BotChannels(BotCredentials("d" * 40), claims=claims or LocalClaims(),
                                    identity=machines.identity)
        # The replicas' store holds a session's values (sealed): here, one vault shared by the replicas.
        self.values = SessionSecrets(self.channels, values or MemoryVault())
        if (watch := getattr(machines, "watch_channels", None)) is not None:
            watch(self.channels)
        self.serving: list[asyncio.Task[None]] = []

    def dial(self, fake: FakeAgentSandbox, pod: str, session_id: str | None = None) -> PoolBotSocket:
        """The pod's bot dials with no credential, its pod's token in its hello."""
        socket = PoolBotSocket(Hello(machine_id=pod, image="dev", capabilities=("daily",), session_id=session_id,
                                     identity=fake.token_of(pod)))
        assert self.channels.admits_identity_only(None)
        self.serving.append(asyncio.create_task(self.channels.serve(socket, None)))
        return socket

    async def start(self, session: LaunchSpec) -> None:
        """As a start does: the session's values held for its bot, then its claim."""
        await self.values.deposit(session.session_id, session_assignment(session).params(), ttl_seconds=600)
        await self.machines.launch(session)

    async def aclose(self) -> None:
        for task in self.serving:
            task.cancel()
        await asyncio.gather(*self.serving, return_exceptions=True)
        await self.values.aclose()
        await self.machines.aclose()


@pytest.fixture
async def dispatcher(fake_k8s_sandbox: FakeAgentSandbox) -> AsyncIterator[Dispatcher]:
    wired = Dispatcher(SandboxClaims.from_env(env(fake_k8s_sandbox)))
    yield wired
    await wired.aclose()


@contextlib.asynccontextmanager
async def two_replicas(fake: FakeAgentSandbox) -> AsyncIterator[tuple[Dispatcher, Dispatcher]]:
    """The replica the pool bots dialled, and the one a start reached: one replicas' store between them."""
    store = MemoryVault()
    holder = Dispatcher(SandboxClaims.from_env(env(fake)), store)
    starter = Dispatcher(SandboxClaims.from_env(env(fake)), store)
    try:
        yield holder, starter
    finally:
        await starter.aclose()
        await holder.aclose()


async def idle_pool_bot(dispatcher: Dispatcher, fake: FakeAgentSandbox) -> tuple[str, PoolBotSocket]:
    """A pool of one whose pod runs and whose bot has dialled in: idle on this replica's channel."""
    add_pool(fake, 1)
    [warm] = await warm_running(fake, 1)
    bot = dispatcher.dial(fake, warm)
    await until(lambda: [link.machine_id for link in dispatcher.channels.idle()] == [warm], "the pool bot idle here",
                timeout=20)
    return warm, bot


async def test_a_warm_start_hands_the_adopted_pool_pods_connected_bot_its_session_with_no_new_pod(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    warm, bot = await idle_pool_bot(dispatcher, fake)
    assert bot.welcomed() and bot.assigns() == []  # idle: its identity alone admitted it

    s, created = spec(), len(fake.created)
    await dispatcher.start(s)
    await until(lambda: len(bot.assigns()) == 1, "the session's assign", timeout=20)
    [assign] = bot.assigns()
    assert assign["params"] == session_assignment(s).params()  # the session's values, over the channel
    link = dispatcher.channels.link_for(s.session_id)
    assert link is not None and link.machine_id == warm and dispatcher.channels.idle() == []
    assert fake.claims[f"vf-{s.session_id}"]["status"]["sandbox"]["name"] == warm
    assert f"vf-{s.session_id}" not in fake.pods  # no pod of its own: the warm one serves it
    assert all(name.startswith(f"{POOL}-") for name in fake.created[created:])  # only the pool's refill
    await until(lambda: not dispatcher.values._deliveries, "the delivery done", timeout=20)
    assert not await dispatcher.values.waiting(s.session_id)  # taken: forgotten


async def test_a_start_at_another_replica_reaches_the_idle_bot_its_claim_adopted_here(
        fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    async with two_replicas(fake) as (holder, starter):
        warm, bot = await idle_pool_bot(holder, fake)
        s = spec()
        await starter.start(s)
        await until(lambda: len(bot.assigns()) == 1, "the session's assign, from the holding replica", timeout=30)
        assert bot.assigns()[0]["params"] == session_assignment(s).params()
        link = holder.channels.link_for(s.session_id)
        assert link is not None and link.machine_id == warm and holder.channels.idle() == []
        assert starter.channels.link_for(s.session_id) is None  # its signalling reaches it through the owner record


async def test_an_adopted_pod_is_never_handed_a_second_session_and_a_claim_with_no_warm_pod_goes_cold(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    warm, bot = await idle_pool_bot(dispatcher, fake)
    first = spec()
    await dispatcher.machines.launch(first)
    await until(lambda: dispatcher.channels.link_for(first.session_id) is not None, "the first session's bot",
                timeout=20)

    second = spec()  # the pool's refill is not running: the controller waits ~2 s for it, then goes cold
    began = time.monotonic()
    await dispatcher.machines.launch(second)
    await until(lambda: f"vf-{second.session_id}" in fake.pods, "the cold pod", timeout=30)
    assert time.monotonic() - began >= 1.0  # not before the controller's wait (from a whole-second timestamp)
    assert fake.pods[f"vf-{second.session_id}"]["metadata"]["labels"]["agents.x-k8s.io/launch-type"] == "cold"
    assert dispatcher.channels.hand_over(warm, second.session_id) is None  # taken: never idle again
    assert len(bot.assigns()) <= 1 and dispatcher.channels.link_for(second.session_id) is None


async def test_a_pool_bot_that_dials_after_its_pod_was_adopted_is_admitted_as_its_sessions_and_sent_its_values(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 1)
    [warm] = await warm_running(fake, 1)
    s = spec()
    await dispatcher.start(s)
    assert (await dispatcher.machines.wait_started(s.session_id, timeout=20)).machine_id == warm
    bot = dispatcher.dial(fake, warm)
    await until(lambda: len(bot.assigns()) == 1, "the session's assign", timeout=20)
    assert bot.assigns()[0]["params"] == session_assignment(s).params()
    link = dispatcher.channels.link_for(s.session_id)
    assert link is not None and link.machine_id == warm and dispatcher.channels.idle() == []


async def test_a_hello_naming_a_session_gets_its_values_only_from_the_pod_its_claim_holds(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    """A session's values wait for its bot from the start until its bot's hello: in that window a pool pod
    still idle, or the pod of another session's claim, names the session in its hello; both are refused."""
    fake = fake_k8s_sandbox
    add_pool(fake, 2)
    first, second = await warm_running(fake, 2)
    mine, theirs = spec(), spec()
    await dispatcher.start(theirs)
    held = (await dispatcher.machines.wait_started(theirs.session_id, timeout=20)).machine_id
    idle = second if held == first else first
    await dispatcher.values.deposit(mine.session_id, session_assignment(mine).params(), ttl_seconds=600)

    bots = [dispatcher.dial(fake, pod, session_id=mine.session_id) for pod in (held, idle)]
    await until(lambda: all(task.done() for task in dispatcher.serving), "both hellos answered", timeout=20)
    refusals = [task.result() for task in dispatcher.serving]
    assert f"pod {held} is session {theirs.session_id}'s" == refusals[0]
    assert f"pod {idle} is the pool's: no claim holds it for session {mine.session_id}" == refusals[1]
    assert not any(bot.welcomed() or bot.assigns() for bot in bots)
    assert await dispatcher.values.waiting(mine.session_id) and dispatcher.channels.link_for(mine.session_id) is None

    own = dispatcher.dial(fake, held)  # control: the claim's own pod, naming no session, gets its claim's
    await until(lambda: len(own.assigns()) == 1, "its own session's assign", timeout=20)
    assert own.assigns()[0]["params"] == session_assignment(theirs).params()


async def test_only_the_pools_own_pods_are_admitted_on_their_identity_alone(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 1)
    add_pool(fake, 1, name="someone-elses")  # another pool of the namespace, same ServiceAccount
    [warm] = await warm_running(fake, 1)
    pool = dispatcher.machines
    assert isinstance(pool, SandboxClaims)

    def hello(pod: str, **kw: object) -> Hello:
        return Hello(**{"machine_id": pod, "capabilities": ("daily",), "identity": fake.token_of(pod), **kw})  # type: ignore[arg-type]

    granted = await pool.pool_identity.grant(hello(warm))
    assert not isinstance(granted, str) and (granted.kind, granted.subject) == ("idle", warm)
    assert "not vf-other" in str(await pool.pool_identity.grant(hello(warm, machine_id="vf-other")))
    assert "identity token" in str(await pool.pool_identity.grant(hello(warm, identity=None)))
    assert "not authenticated" in str(await pool.pool_identity.grant(hello(warm, identity="forged")))

    await until(lambda: any(fake.pods.get(n) for n in fake.warm("someone-elses")), "the other pool's pod", timeout=20)
    [other] = fake.warm("someone-elses")
    assert "not of a voicefleet pool" in str(await pool.pool_identity.grant(hello(other)))

    # A bare pod of the same ServiceAccount and audience (a `pods` mode session's): no Sandbox of the pool.
    pods = K8sMachines.from_env(env(fake, K8S_MODE="pods"))
    try:
        bare = spec()
        await pods.launch(bare)
        refused = await pool.pool_identity.grant(hello(f"vf-{bare.session_id}"))
        assert "not a Sandbox's pod" in str(refused)
    finally:
        await pods.aclose()

    socket = dispatcher.dial(fake, other)  # through the channel: refused before it is welcomed
    await until(lambda: dispatcher.serving[-1].done(), "the refusal", timeout=20)
    assert not socket.welcomed() and dispatcher.channels.idle() == []


async def test_a_hello_without_a_credential_is_let_in_only_by_kubernetes_and_refused_by_every_other_provider(
        fake_k8s_sandbox: FakeAgentSandbox) -> None:
    pods = Dispatcher(K8sMachines.from_env(env(fake_k8s_sandbox, K8S_MODE="pods")))
    try:
        assert pods.channels.admits_identity_only(None)  # a session pod's bot (k8s/session_pods.py)
    finally:
        await pods.aclose()
    other = BotChannels(BotCredentials("d" * 40), claims=LocalClaims(), identity=Unverified("any other provider"))
    assert not other.admits_identity_only(None)
    sandbox = Dispatcher(SandboxClaims.from_env(env(fake_k8s_sandbox)))
    try:
        assert sandbox.channels.admits_identity_only(None)
        assert not sandbox.channels.admits_identity_only("Bearer forged")  # a credential is checked, never skipped
        no_channel = BotChannels(None, claims=LocalClaims(), identity=Unverified("no channel"))
        assert isinstance(sandbox.machines, SandboxClaims)
        sandbox.machines.watch_channels(no_channel)
        assert not no_channel.admits_identity_only(None)  # no BOT_CHANNEL_TOKEN: no channel at all
    finally:
        await sandbox.aclose()


async def test_a_link_admitted_for_an_earlier_pod_of_the_name_is_never_handed_the_adopted_pods_session(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox, caplog: pytest.LogCaptureFixture) -> None:
    """The Sandbox controller makes a Sandbox's pod again under its name once it is deleted (an eviction, a
    drain): a link admitted on the earlier pod's token (a copy of it, held past that pod's life) is not the
    new pod's bot, so a claim adopting the Sandbox hands it nothing."""
    fake = fake_k8s_sandbox
    warm, bot = await idle_pool_bot(dispatcher, fake)
    fake.pods[warm]["metadata"]["uid"] = "the-pod-made-again-under-its-name"
    s = spec()
    await dispatcher.start(s)
    await until(lambda: "admitted for an earlier pod" in caplog.text, "the hand-over refused", timeout=20)
    assert fake.claims[f"vf-{s.session_id}"]["status"]["sandbox"]["name"] == warm  # control: it adopted the pod
    assert bot.assigns() == [] and dispatcher.channels.link_for(s.session_id) is None


async def test_a_pod_made_again_under_its_name_is_welcomed_without_the_earlier_pods_resume_key(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    """The earlier pod's bot was welcomed with a resume key that lives a day; the pod made again under the
    same name (the Sandbox controller's, after an eviction) is another pod, whose bot never had that key:
    its first hello is welcomed, not refused for a key that was never its own."""
    fake = fake_k8s_sandbox
    warm, bot = await idle_pool_bot(dispatcher, fake)
    assert bot.resume_key() is not None
    [link] = dispatcher.channels.idle()
    await link.disconnect()  # the earlier pod's bot is gone
    await until(lambda: dispatcher.channels.idle() == [], "the earlier link gone", timeout=20)
    new_uid = "the-pod-made-again-under-its-name"
    fake.pods[warm]["metadata"]["uid"] = new_uid
    fake._project_token(warm, fake.pods[warm]["spec"], new_uid)
    again = dispatcher.dial(fake, warm)
    await until(again.welcomed, "the new pod's bot welcomed", timeout=20)
    assert again.resume_key() not in (None, bot.resume_key())
