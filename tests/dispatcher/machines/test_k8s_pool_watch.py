"""A replica holding idle pool bots keeps one watch of voicefleet's SandboxClaims however many it holds
(a watch per idle bot, or per start, held one of the API client's connections each: a hundred stalled
every call), keeps it through failures, and hands a bot over only once its pod's Sandbox is the claim's;
a start at another replica still reaches the bot its claim adopted here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dispatcher.machines.base import MachinesError
from dispatcher.machines.bot_environment import session_assignment
from dispatcher.machines.k8s import handover
from dispatcher.machines.k8s.api import KubeApi
from dispatcher.machines.k8s.sandbox import SandboxClaims
from tests.dispatcher.machines.test_k8s import spec
from tests.dispatcher.machines.test_k8s_sandbox import add_pool, env, warm_running
from tests.dispatcher.machines.test_k8s_sandbox_warm import Dispatcher, idle_pool_bot, two_replicas
from tests.fakes.k8s_sandbox import FakeAgentSandbox
from tests.support.waiting import until

IDLE_BOTS = 150
STARTS = 100


@pytest.fixture
async def dispatcher(fake_k8s_sandbox: FakeAgentSandbox) -> AsyncIterator[Dispatcher]:
    wired = Dispatcher(SandboxClaims.from_env(env(fake_k8s_sandbox)))
    yield wired
    await wired.aclose()


async def test_a_replica_holding_150_idle_pool_bots_keeps_one_claims_watch_and_a_start_elsewhere_reaches_them(
        fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    async with two_replicas(fake) as (holder, starter):
        add_pool(fake, IDLE_BOTS)
        pods = await warm_running(fake, IDLE_BOTS)
        bots = {pod: holder.dial(fake, pod) for pod in pods}
        await until(lambda: len(holder.channels.idle()) == IDLE_BOTS, "every pool bot idle here", timeout=120)
        await until(lambda: fake.claim_watches.open_watches == 1, "the replica's claims watch", timeout=30)
        assert fake.watches.open_watches == 0  # no pod watched
        [listed] = [c.query for c in fake.calls_to("GET", "/sandboxclaims") if "watch" not in c.query]
        assert listed == {"labelSelector": "voicefleet.io/app=bot"}  # voicefleet's claims, then watched from there
        assert fake.claim_watches.open_watches == 1

        s = spec()
        await starter.start(s)
        await until(lambda: holder.channels.link_for(s.session_id) is not None, "the handed-over bot", timeout=60)
        link = holder.channels.link_for(s.session_id)
        assert link is not None
        assert bots[link.machine_id].assigns()[0]["params"] == session_assignment(s).params()
        assert fake.claims[f"vf-{s.session_id}"]["status"]["sandbox"]["name"] == link.machine_id
        assert len(holder.channels.idle()) == IDLE_BOTS - 1
        await until(lambda: fake.claim_watches.open_watches == 1, "the start's own watch ended; the replica's on",
                    timeout=30)


async def test_starts_whose_claims_do_not_bind_share_the_replicas_one_watch_and_leave_the_api_client_free(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    """A start waits for its claim's binding on the replica's watch, not a watch of its own: a hundred claims
    the controller does not bind (down, slow, a quota) hold one of the API client's connections, not all."""
    fake = fake_k8s_sandbox
    add_pool(fake, 0)
    fake.reconciling = False  # the controller's next pass has not come (a restart, a leader election, a backlog)
    assert dispatcher.channels.idle() == []
    for _ in range(STARTS):
        await dispatcher.machines.launch(spec())
    await until(lambda: fake.claim_watches.open_watches == 1, "the replica's claims watch", timeout=60)
    assert await dispatcher.machines.read_pod("no-such-pod") is None  # the API client is not exhausted
    assert fake.claim_watches.open_watches == 1
    fake.reconciling = True


async def test_the_replicas_watch_ends_once_no_start_waits_and_no_pool_bot_is_idle_here(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_k8s_sandbox
    monkeypatch.setattr(handover, "HANDOVER_WAIT_SECONDS", 1.0)
    add_pool(fake, 0)
    fake.reconciling = False
    await dispatcher.machines.launch(spec())
    await until(lambda: fake.claim_watches.open_watches == 1, "the start's wait opened the watch", timeout=30)
    await until(lambda: fake.claim_watches.open_watches == 0, "its wait over: the watch closed", timeout=30)
    fake.reconciling = True


def _failing_claims_list(api: KubeApi, error: MachinesError, times: int) -> list[str]:
    """The claims' list (not their watch) fails `times` times as `_relist` raises it; the calls failed."""
    real_call = api.call
    failed: list[str] = []

    async def call(method: str, path: str, **kw: Any) -> Any:
        if method == "GET" and path.endswith("/sandboxclaims") and "watch" not in (kw.get("params") or {}) \
                and len(failed) < times:
            failed.append(path)
            raise error
        return await real_call(method, path, **kw)

    api.call = call  # type: ignore[method-assign]
    return failed


async def test_a_failed_list_of_the_claims_is_tried_again_and_a_start_elsewhere_still_reaches_the_idle_bot(
        fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    async with two_replicas(fake) as (holder, starter):
        failed = _failing_claims_list(holder.machines.api, MachinesError(
            "k8s_unavailable", "GET sandboxclaims: HTTP 503 (retry deadline passed)", retry_after=1.0), times=3)
        warm, bot = await idle_pool_bot(holder, fake)
        await until(lambda: len(failed) == 3, "the list failed three times", timeout=30)
        await until(lambda: fake.claim_watches.open_watches == 1, "listed again, then watched", timeout=60)
        s = spec()
        await starter.start(s)
        await until(lambda: len(bot.assigns()) == 1, "the idle bot handed the session started elsewhere", timeout=60)
        assert bot.assigns()[0]["params"] == session_assignment(s).params()


async def test_a_refused_list_of_the_claims_is_said_once_and_tried_again_slowly(
        fake_k8s_sandbox: FakeAgentSandbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    fake = fake_k8s_sandbox
    monkeypatch.setattr(handover, "REFUSED_PAUSE_SECONDS", 0.2)
    async with two_replicas(fake) as (holder, starter):
        refused = MachinesError("k8s_unauthorized", "the API server refused to list voicefleet's sandboxclaims: "
                                "Forbidden (check K8S_TOKEN_FILE and that the dispatcher's ServiceAccount may ...)")
        failed = _failing_claims_list(holder.machines.api, refused, times=4)
        with caplog.at_level(logging.INFO, logger="dispatcher.machines.k8s"):
            warm, bot = await idle_pool_bot(holder, fake)
            await until(lambda: fake.claim_watches.open_watches == 1, "watched once the RBAC is fixed", timeout=60)
        told = [r for r in caplog.records if "cannot be watched" in r.getMessage()]
        assert len(failed) == 4 and len(told) == 1 and told[0].levelno == logging.ERROR
        s = spec()
        await starter.start(s)
        await until(lambda: len(bot.assigns()) == 1, "the idle bot handed the session started elsewhere", timeout=60)


async def test_a_claims_status_alone_never_hands_over_a_pool_bot_whose_sandbox_is_not_the_claims(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox, caplog: pytest.LogCaptureFixture) -> None:
    """A writer of `sandboxclaims/status` names an idle pool bot's pod in a start's unbound claim: the pod's
    Sandbox is still the pool's, so the start's own replica does not hand its bot the session."""
    fake = fake_k8s_sandbox
    warm, bot = await idle_pool_bot(dispatcher, fake)
    fake.reconciling = False
    s = spec()
    with caplog.at_level(logging.INFO, logger="dispatcher.machines.k8s"):
        await dispatcher.start(s)
        with fake._pods_lock:
            claim = fake.claims[f"vf-{s.session_id}"]
            claim["status"]["sandbox"] = {"name": warm, "podIPs": ["10.0.0.9"]}
            fake._bump(claim)
        await until(lambda: any("its Sandbox is not that claim's" in r.getMessage() for r in caplog.records),
                    "the claim's grant checked and refused", timeout=30)
    assert dispatcher.channels.link_for(s.session_id) is None
    assert [link.machine_id for link in dispatcher.channels.idle()] == [warm] and bot.assigns() == []
    fake.reconciling = True


async def test_an_owner_check_whose_read_fails_is_tried_again_and_the_idle_bot_still_handed_its_session(
        fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    async with two_replicas(fake) as (holder, starter):
        warm, bot = await idle_pool_bot(holder, fake)
        api, failed = holder.machines.api, list[str]()
        served = api.call

        async def once_unavailable(method: str, path: str, **kwargs: Any) -> Any:
            """The API client's answer once its own retries are spent, on the owner check's one read."""
            if method == "GET" and "/sandboxes/" in path and not failed:
                failed.append(path)
                raise MachinesError("k8s_unavailable", f"GET {path}: HTTP 503 (retry deadline passed)")
            return await served(method, path, **kwargs)

        api.call = once_unavailable  # type: ignore[method-assign]
        s = spec()
        await starter.start(s)
        await until(lambda: failed, "the owner check's read failed once", timeout=30)
        await until(lambda: len(bot.assigns()) == 1, "the bot handed its session after all", timeout=60)
        assert bot.assigns()[0]["params"] == session_assignment(s).params()
        assert warm not in [link.machine_id for link in holder.channels.idle()]


async def test_a_claims_create_answer_handled_after_the_watch_saw_it_bound_still_hands_the_idle_bot_its_session(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    """A busy replica reads its watch's events (the claim bound, then Ready) in the same turn as its create's
    answer, which says unbound and is handled after them, before the owner check runs: the older view must
    not undo the binding the watch saw (the bot stayed idle, its session never started, nothing said)."""
    fake, handing = fake_k8s_sandbox, dispatcher.machines.handover
    real_on_claim, real_follow = handing._on_claim, handing.follow
    answers: list[tuple[str, dict[str, Any]]] = []  # the create's answer, its handling held back
    held: list[tuple[str, dict[str, Any] | None]] = []  # the watch's events of the binding, read in one turn

    def late_answer(session_id: str, claim: dict[str, Any]) -> None:
        answers.append((session_id, claim))

    def watched(event: str, claim: dict[str, Any] | None) -> None:
        status = (claim or {}).get("status") or {}
        if not answers or not status.get("sandbox"):
            return real_on_claim(event, claim)
        held.append((event, claim))
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
            return None  # the Ready event comes in the same turn
        for each in held:
            real_on_claim(*each)
        held.clear()
        real_follow(*answers.pop())  # the create's answer, handled last, before the check task runs
        return None

    handing._on_claim = watched  # type: ignore[method-assign]  # the watch's judge, taken when it opens
    handing.follow = late_answer  # type: ignore[method-assign]
    warm, bot = await idle_pool_bot(dispatcher, fake)
    fake.reconciling = False  # the create's answer is unbound, as the API server answers a create
    s = spec()
    await dispatcher.start(s)
    assert len(answers) == 1 and not (answers[0][1].get("status") or {}).get("sandbox")
    fake.reconciling = True
    await until(lambda: len(bot.assigns()) == 1, "the adopted pod's idle bot handed its session", timeout=30)
    assert bot.assigns()[0]["params"] == session_assignment(s).params()
    assert dispatcher.channels.link_for(s.session_id) is not None and not held


async def test_a_hello_in_the_turn_the_unwanted_watch_is_cancelled_still_gets_a_watch(
        dispatcher: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    """The last idle bot here leaves (the watch is cancelled; it ends at its next await) and another's hello
    comes before that: the new hello must get a watch, not the one on its way out."""
    fake, handing = fake_k8s_sandbox, dispatcher.machines.handover
    add_pool(fake, 0)
    handing._keep_watching()
    await until(lambda: fake.claim_watches.open_watches == 1, "the replica's claims watch", timeout=30)
    leaving = handing._claims_watch
    assert leaving is not None and dispatcher.channels.idle() == []
    handing._stop_watching_if_unwanted()  # nothing idle here, no start waiting
    handing._keep_watching()  # an idle hello, in the same turn
    await until(lambda: leaving.done(), "the unwanted watch ended", timeout=30)
    assert handing._claims_watch is not None and not handing._claims_watch.done()
    await until(lambda: fake.claim_watches.open_watches == 1, "the hello's own watch", timeout=30)
