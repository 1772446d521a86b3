"""An idle pool bot whose channel drops (a rollout, a proxy's cut) dials again and is idle again: its
hello is not one-use, its pod's token, its Sandbox's owner and the resume key its welcome gave it are
the proof. One pod never holds two idle links, and a copy of its token never gets in once the bot was
welcomed: a hello without the key is refused, idle or naming the session, even while the bot's link
does not answer; with the key, the bot's re-dial takes its link's place at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from botchannel.contract import Hello
from dispatcher.machines.bot_environment import session_assignment
from dispatcher.machines.k8s.sandbox import SandboxClaims
from tests.dispatcher.machines.test_k8s import spec
from tests.dispatcher.machines.test_k8s_sandbox import env
from tests.dispatcher.machines.test_k8s_sandbox_warm import Dispatcher, PoolBotSocket, idle_pool_bot
from tests.fakes.k8s_sandbox import FakeAgentSandbox
from tests.support.waiting import until

DROP = "\x00drop"


class DroppableSocket(PoolBotSocket):
    """A pool bot's socket whose connection can be cut (`drop`)."""

    def drop(self) -> None:
        self.inbox.put_nowait(DROP)

    async def receive_text(self) -> str:
        got = await self.inbox.get()
        if got == DROP:
            raise RuntimeError("connection dropped")
        return got


@pytest.fixture
async def dispatcher(fake_k8s_sandbox: FakeAgentSandbox) -> AsyncIterator[Dispatcher]:
    wired = Dispatcher(SandboxClaims.from_env(env(fake_k8s_sandbox)))
    yield wired
    await wired.aclose()


def redial(dispatcher: Dispatcher, fake: FakeAgentSandbox, pod: str, resume: str | None = None) -> DroppableSocket:
    """A hello with the pod's token: the real bot's re-dial with the key its welcome gave it, a copy without."""
    socket = DroppableSocket(Hello(machine_id=pod, image="dev", capabilities=("daily",), session_id=None,
                                   identity=fake.token_of(pod), resume=resume))
    dispatcher.serving.append(asyncio.create_task(dispatcher.channels.serve(socket, None)))
    return socket


def go_silent(socket: PoolBotSocket) -> None:
    """Its connection half-open: what the dispatcher sends goes nowhere, nothing comes back."""
    async def into_the_void(data: str) -> None:
        pass
    socket.send_text = into_the_void  # type: ignore[method-assign]


def refused(dispatcher: Dispatcher, socket: PoolBotSocket) -> bool:
    """Its connection ended with no welcome."""
    return dispatcher.serving[-1].done() and not socket.welcomed()


def idle_here(dispatcher: Dispatcher) -> list[str]:
    return [link.machine_id for link in dispatcher.channels.idle()]


async def test_an_idle_pool_bot_dials_again_after_a_drop_and_is_handed_a_session(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    warm, fixtures = await idle_pool_bot(dispatcher, fake)
    go_silent(fixtures)
    first = redial(dispatcher, fake, warm, fixtures.resume_key())  # replaces the fixture's link at once
    await until(first.welcomed, "welcomed", timeout=20)
    assert first.resume_key() == fixtures.resume_key()  # the bot's key stays its own
    first.drop()
    await until(lambda: idle_here(dispatcher) == [], "the drop seen", timeout=20)
    again = redial(dispatcher, fake, warm, first.resume_key())
    await until(lambda: idle_here(dispatcher) == [warm], "idle again after its re-dial", timeout=20)
    assert again.welcomed()
    s = spec()
    await dispatcher.start(s)
    await until(lambda: len(again.assigns()) == 1, "the session handed to the re-dialled bot", timeout=30)
    assert again.assigns()[0]["params"] == session_assignment(s).params()


@pytest.mark.parametrize("answering", [True, False])
async def test_a_hello_without_the_bots_key_is_refused_and_the_bots_own_redial_replaces_its_link(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox, answering: bool) -> None:
    fake = fake_k8s_sandbox
    warm, first = await idle_pool_bot(dispatcher, fake)
    [older] = dispatcher.channels.idle()
    if not answering:
        go_silent(first)  # a stalled or half-open bot: a copy must not take its place either
    copy = redial(dispatcher, fake, warm)  # a copy of the pod's token, without the bot's key
    await until(lambda: refused(dispatcher, copy), "the keyless hello refused", timeout=20)
    assert copy.assigns() == []

    go_silent(first)  # the first connection half-open: the real bot dials again, with its key
    newer = redial(dispatcher, fake, warm, first.resume_key())
    await until(newer.welcomed, "the newer hello welcomed", timeout=30)
    await until(older.closed.is_set, "the older link closed", timeout=20)
    [link] = dispatcher.channels.idle()
    assert link.socket is newer and link is not older
    assert copy.resume_key() is None


@pytest.mark.parametrize("naming_the_session", [False, True])
async def test_a_hello_with_a_served_pods_identity_never_replaces_its_session_link_while_that_answers(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox, naming_the_session: bool) -> None:
    fake = fake_k8s_sandbox
    warm, bot = await idle_pool_bot(dispatcher, fake)
    s = spec()
    await dispatcher.start(s)
    await until(lambda: len(bot.assigns()) == 1, "the bot serves the session", timeout=30)
    live = dispatcher.channels.link_for(s.session_id)
    # A copy of the pod's token, its hello idle or naming the session (the claim's name gives it away).
    copy = DroppableSocket(Hello(machine_id=warm, image="dev", capabilities=("daily",),
                                 session_id=s.session_id if naming_the_session else None, identity=fake.token_of(warm)))
    dispatcher.serving.append(asyncio.create_task(dispatcher.channels.serve(copy, None)))
    await until(lambda: refused(dispatcher, copy), "the copy's hello refused", timeout=20)
    assert dispatcher.channels.link_for(s.session_id) is live and live is not None and not live.closed.is_set()
    assert live.socket is bot and copy.assigns() == []
