"""An idle pool bot whose channel drops (a rollout, a proxy's cut) dials again and is idle again: its
hello is not one-use, its pod's token and its Sandbox's owner are the proof. One pod never holds two
idle links, and a copy of its token never pushes a live bot off: a second hello, idle or naming the
session, takes the pod's or the session's link's place only once that link stops answering a ping."""

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


def redial(dispatcher: Dispatcher, fake: FakeAgentSandbox, pod: str) -> DroppableSocket:
    socket = DroppableSocket(Hello(machine_id=pod, image="dev", capabilities=("webrtc",), session_id=None,
                                   identity=fake.token_of(pod)))
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
    first = redial(dispatcher, fake, warm)  # replaces the fixture's link, which no longer answers
    await until(first.welcomed, "welcomed", timeout=20)
    first.drop()
    await until(lambda: idle_here(dispatcher) == [], "the drop seen", timeout=20)
    again = redial(dispatcher, fake, warm)
    await until(lambda: idle_here(dispatcher) == [warm], "idle again after its re-dial", timeout=20)
    assert again.welcomed()
    s = spec()
    await dispatcher.start(s)
    await until(lambda: len(again.assigns()) == 1, "the session handed to the re-dialled bot", timeout=30)
    assert again.assigns()[0]["params"] == session_assignment(s).params()


async def test_a_second_idle_hello_for_one_pod_is_refused_while_the_first_link_answers_and_replaces_it_after(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    warm, first = await idle_pool_bot(dispatcher, fake)
    [older] = dispatcher.channels.idle()
    copy = redial(dispatcher, fake, warm)  # a copy of the pod's token, while the real bot answers
    await until(lambda: refused(dispatcher, copy), "the second hello refused", timeout=20)
    assert dispatcher.channels.idle() == [older] and not older.closed.is_set()

    go_silent(first)  # the first connection half-open: the real bot dials again
    newer = redial(dispatcher, fake, warm)
    await until(newer.welcomed, "the newer hello welcomed", timeout=30)
    await until(older.closed.is_set, "the older link closed", timeout=20)
    [link] = dispatcher.channels.idle()
    assert link.socket is newer and link is not older


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
    copy = DroppableSocket(Hello(machine_id=warm, image="dev", capabilities=("webrtc",),
                                 session_id=s.session_id if naming_the_session else None, identity=fake.token_of(warm)))
    dispatcher.serving.append(asyncio.create_task(dispatcher.channels.serve(copy, None)))
    await until(lambda: refused(dispatcher, copy), "the copy's hello refused", timeout=20)
    assert dispatcher.channels.link_for(s.session_id) is live and live is not None and not live.closed.is_set()
    assert live.socket is bot and copy.assigns() == []
