"""The pool pod the stack renders (stacks/k8s/pool_template.py), run by the fake agent-sandbox controller, is
admitted by the dispatcher it was rendered for as an idle pool bot: its identity-only hello passes the
unverified precheck (k8s/hello_precheck.py: audience, ServiceAccount, pod) and the pool's grant
(k8s/pool_bots.py: TokenReview, owners read back, k8s/pool_pod.py); rendered for another image, only
while the pool's template names it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from botchannel.contract import Hello
from dispatcher.machines.k8s.hello_precheck import PrecheckedPool
from dispatcher.machines.k8s.sandbox import SandboxClaims
from stacks.k8s.pool_template import pool_pod
from tests.fakes.fixtures import fake_k8s_sandbox  # noqa: F401 (a fixture: the API server and its controller)
from tests.fakes.k8s_sandbox import POOL, FakeAgentSandbox

CHANNEL_URL = "ws://dispatcher.voicefleet.svc:8081/bots/channel"  # the stack's: its Service's channel port


def environment(fake: FakeAgentSandbox) -> dict[str, str]:
    """The dispatcher's plain settings as the stack writes them, pointed at the fake API server."""
    return {**fake.env, "K8S_SERVICE_ACCOUNT": "voicefleet-bot", "BOT_CHANNEL_URL": CHANNEL_URL,
            "MAX_SESSION_SECONDS": "900", "K8S_RETRY_DEADLINE_SECONDS": "3"}


@pytest.fixture
async def claims(fake_k8s_sandbox: FakeAgentSandbox) -> AsyncIterator[SandboxClaims]:  # noqa: F811
    machines = SandboxClaims.from_env(environment(fake_k8s_sandbox))
    yield machines
    await machines.aclose()


async def warm_pod(fake: FakeAgentSandbox, env: dict[str, str]) -> str:
    template = pool_pod(env)
    fake.add_pool(POOL, 1, template["spec"], template["metadata"]["labels"])
    assert await fake.eventually(lambda: len(fake.warm(POOL)) == 1, timeout=20)
    [name] = fake.warm(POOL)
    fake.set_phase(name, "Running")
    return name


def gate(claims: SandboxClaims) -> PrecheckedPool:
    """What an identity-only hello meets at the channel (SandboxClaims.watch_channels)."""
    return PrecheckedPool(claims.pool_identity, audience=claims.settings.token_audience,
                          username=claims.pod_tokens.username)


async def test_the_stacks_pool_pod_is_admitted_idle(claims: SandboxClaims,
                                                    fake_k8s_sandbox: FakeAgentSandbox) -> None:  # noqa: F811
    fake = fake_k8s_sandbox
    name = await warm_pod(fake, environment(fake))
    granted = await gate(claims).grant(Hello(machine_id=name, capabilities=("daily",), identity=fake.token_of(name)))
    assert not isinstance(granted, str), granted
    assert (granted.kind, granted.subject) == ("idle", name)


async def test_a_pool_pod_rendered_for_another_image_is_admitted_only_while_its_template_names_it(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:  # noqa: F811
    fake = fake_k8s_sandbox
    name = await warm_pod(fake, {**environment(fake), "BOT_IMAGE": "registry.example.com/other@sha256:" + "e" * 64})
    hello = Hello(machine_id=name, capabilities=("daily",), identity=fake.token_of(name))
    granted = await gate(claims).grant(hello)  # the template changed first: a new image rolling out
    assert not isinstance(granted, str) and granted.kind == "idle", granted
    fake.reconciling = False  # the controller has not yet replaced the pod of the template's old image
    fake.set_template(POOL, pool_pod(environment(fake))["spec"])
    refused = await gate(claims).grant(hello)
    assert isinstance(refused, str) and "not the bot's image (BOT_IMAGE)" in refused, refused
