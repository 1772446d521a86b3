"""A credential-less pool bot's hello costs the API server nothing until its token reads as the hello's
pod's projected token of voicefleet's audience (unverified: the TokenReview still decides); a review is
asked once, whatever it answers; and reviews hold connections of their own, never the provider's."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator

import pytest

from botchannel.contract import Hello
from dispatcher.machines.k8s.api import REVIEW_CONNECTIONS
from dispatcher.machines.k8s.hello_precheck import MAX_TOKEN_CHARS, precheck_refusal
from dispatcher.machines.k8s.sandbox import SandboxClaims
from tests.dispatcher.machines.test_k8s_sandbox import add_pool, env, warm_running
from tests.dispatcher.machines.test_k8s_sandbox_warm import Dispatcher, PoolBotSocket
from tests.fakes.k8s import NAMESPACE
from tests.fakes.k8s_sandbox import FakeAgentSandbox
from tests.support.waiting import until

REVIEWS = "tokenreviews"


@pytest.fixture
async def replica(fake_k8s_sandbox: FakeAgentSandbox) -> AsyncIterator[Dispatcher]:
    wired = Dispatcher(SandboxClaims.from_env(env(fake_k8s_sandbox)))
    yield wired
    await wired.aclose()


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _with(token: str, **claims: object) -> str:
    """The token with its payload's claims changed (its signature no longer matches: never reviewed here)."""
    header, _, signature = token.split(".")
    payload = {**_claims(token), **claims}
    encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


def _hello(pod: str, token: str) -> Hello:
    return Hello(machine_id=pod, image="dev", capabilities=("daily",), identity=token)


async def _pool_pod(fake: FakeAgentSandbox) -> tuple[str, str]:
    """A running pool pod, and its projected token."""
    add_pool(fake, 1)
    [warm] = await warm_running(fake, 1)
    token = fake.token_of(warm)
    assert token is not None
    return warm, token


async def test_a_token_that_cannot_be_the_hellos_pods_is_refused_without_a_token_review(
        replica: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    warm, genuine = await _pool_pod(fake)
    audience = _claims(genuine)["aud"]
    refused = {
        "two parts": genuine.rsplit(".", 1)[0],
        "not base64url": genuine.replace(".", ".*", 1),
        "a payload that is no object": _with(genuine).split(".")[0] + ".WzFd." + genuine.split(".")[2],
        "oversized": _with(genuine, padding="x" * MAX_TOKEN_CHARS),
        "another audience": _with(genuine, aud=["https://kubernetes.default.svc"]),
        "another ServiceAccount": _with(genuine, sub=f"system:serviceaccount:{NAMESPACE}:intruder"),
        "no pod claim": _with(genuine, **{"kubernetes.io": {"namespace": NAMESPACE}}),
        "another pod": _with(genuine, **{"kubernetes.io": {"pod": {"name": "vf-other", "uid": "u"}}}),
        "expired": _with(genuine, exp=int(time.time()) - 1),
        "no expiry": _with(genuine, exp=None),
    }
    sockets = {why: dispatcher_dial(replica, warm, token) for why, token in refused.items()}
    await until(lambda: all(task.done() for task in replica.serving), "every refused hello closed", timeout=30)
    assert [why for why, socket in sockets.items() if socket.welcomed()] == []
    assert fake.calls_to("POST", REVIEWS) == []  # no review for any of them

    assert audience == [replica.machines.settings.token_audience]  # control: the genuine one passes,
    genuine_bot = dispatcher_dial(replica, warm, genuine)  # with one review
    await until(genuine_bot.welcomed, "the genuine pool bot welcomed", timeout=20)
    assert len(fake.calls_to("POST", REVIEWS)) == 1


def test_the_precheck_reads_a_string_audience_and_names_what_is_wrong() -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"RS256"}').rstrip(b"=").decode()

    def token(claims: dict[str, object]) -> str:
        return f"{header}.{base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b'=').decode()}.c2ln"

    claims = {"aud": "https://vf", "sub": "system:serviceaccount:ns:bots", "exp": 2_000,
              "kubernetes.io": {"pod": {"name": "pool-a", "uid": "u"}}}
    check = {"audience": "https://vf", "username": "system:serviceaccount:ns:bots", "machine_id": "pool-a"}
    assert precheck_refusal(token(claims), **check, now=1_000) is None  # `aud` may be one string (RFC 7519 §4.1.3)
    assert "expired" in str(precheck_refusal(token(claims), **check, now=2_000))
    assert "pool-b" in str(precheck_refusal(token(claims), **{**check, "machine_id": "pool-b"}, now=1_000))
    assert "not a JWT" in str(precheck_refusal("a.b", **check, now=1_000))


async def test_a_token_review_answered_429_is_asked_once_and_the_hello_refused(
        replica: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    warm, token = await _pool_pod(fake)
    fake.fail(429, times=5, path_contains=REVIEWS, retry_after=0.0)
    bot = dispatcher_dial(replica, warm, token)
    await until(lambda: all(task.done() for task in replica.serving), "the throttled hello closed", timeout=30)
    assert not bot.welcomed()
    assert len(fake.calls_to("POST", REVIEWS)) == 1


async def test_held_token_reviews_leave_the_providers_connections_free(
        replica: Dispatcher, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    warm, token = await _pool_pod(fake)
    hold = fake.hold(times=1_000, path_contains=REVIEWS)
    reviews = [asyncio.create_task(replica.machines.api.review(token)) for _ in range(120)]  # a flood
    try:
        await until(lambda: hold.caught >= REVIEW_CONNECTIONS, "the reviews' connections all held", timeout=30)
        pod = await asyncio.wait_for(replica.machines.read_pod(warm), 60)  # the provider's call, meanwhile
        assert pod is not None
        assert hold.caught == REVIEW_CONNECTIONS  # the rest wait for one of the reviews' own connections
    finally:
        hold.release()
        for review in reviews:
            review.cancel()
        await asyncio.gather(*reviews, return_exceptions=True)


def dispatcher_dial(dispatcher: Dispatcher, pod: str, token: str) -> PoolBotSocket:
    """A credential-less dial whose hello carries `token` (a genuine pool bot's, or an attacker's)."""
    socket = PoolBotSocket(_hello(pod, token))
    dispatcher.serving.append(asyncio.create_task(dispatcher.channels.serve(socket, None)))
    return socket
