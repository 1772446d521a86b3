"""agent-sandbox with a pool per release, against the strict fake API server and its controller: a claim
checks out from its release's SandboxWarmPool (found by its `voicefleet.io/release` label) and adopts only
that pool's warm pod, a release with no pool is refused naming it and the fix, each release's pod is
admitted on its identity alone, the planner sizes each pool from its release's share and empties one at
weight 0 at once, and nothing of the session's secrets is in the claim or the pod."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from botchannel.contract import Hello
from dispatcher.machines.base import MachinesError, MachineState
from dispatcher.machines.k8s.pods import pod_body
from dispatcher.machines.k8s.sandbox import SandboxClaims
from dispatcher.machines.k8s.settings import K8sSettings
from dispatcher.releases.catalogue import Catalogue, Release
from dispatcher.releases.traffic import Traffic
from tests.dispatcher.machines.test_k8s import spec
from tests.dispatcher.machines.test_k8s_pool_sizing import Clock, sizing, starts, ticks
from tests.dispatcher.machines.test_k8s_sandbox import CHANNEL_URL, add_pool, env
from tests.fakes.k8s_sandbox import POOL, FakeAgentSandbox

STABLE, CANARY = "stable", "canary"
IMAGES = {STABLE: "registry.example/bot@sha256:" + "a" * 64, CANARY: "registry.example/bot@sha256:" + "b" * 64}


def pool_of(release: str) -> str:
    return f"voicefleet-bot-{release}"  # the name the stack derives; the dispatcher finds it by label


def add_release_pool(fake: FakeAgentSandbox, release: str, replicas: int) -> None:
    """A release's SandboxTemplate (its image) and SandboxWarmPool, labelled with the release, as a stack makes them."""
    settings = K8sSettings.from_env(env(fake))
    template = pod_body(settings, "template", image=IMAGES[release], env={"BOT_CHANNEL_URL": CHANNEL_URL},
                        labels={}, annotations={}, deadline_seconds=None)
    fake.add_pool(pool_of(release), replicas, template["spec"], template["metadata"]["labels"],
                  labels={"voicefleet.io/release": release})


async def running(fake: FakeAgentSandbox, pool: str, count: int) -> list[str]:
    assert await fake.eventually(lambda: len(fake.warm(pool)) == count and all(n in fake.pods for n in fake.warm(pool)),
                                 timeout=20)
    for name in fake.warm(pool):
        fake.set_phase(name, "Running")
    return fake.warm(pool)


@pytest.fixture
async def claims(fake_k8s_sandbox: FakeAgentSandbox) -> AsyncIterator[SandboxClaims]:
    machines = SandboxClaims.from_env(env(fake_k8s_sandbox))
    yield machines
    await machines.aclose()


async def test_a_claim_adopts_only_its_releases_warm_pod_and_nothing_secret_is_in_the_cluster(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_release_pool(fake, STABLE, 1)
    add_release_pool(fake, CANARY, 1)
    [stable_pod] = await running(fake, pool_of(STABLE), 1)
    [canary_pod] = await running(fake, pool_of(CANARY), 1)
    secrets = {"channel": "chan-" + "c" * 40, "daily": "daily-" + "d" * 40, "turn": "turn-" + "t" * 40,
               "room": "https://team.daily.co/room-" + "r" * 12, "caller": "caller-data-" + "k" * 20}
    s = spec(release=CANARY, image=IMAGES[CANARY], channel_token=secrets["channel"], bot_token=secrets["daily"],
             room_url=secrets["room"], body={"apiKey": secrets["caller"]},
             ice_config={"iceServers": [{"urls": ["turn:turn.example:3478"], "username": "u",
                                         "credential": secrets["turn"]}]})
    await claims.launch(s)
    machine = await claims.wait_started(s.session_id, timeout=20)
    assert machine.state is MachineState.STARTED and machine.machine_id == canary_pod  # the canary's pod, not stable's
    claim = fake.claims[f"vf-{s.session_id}"]
    assert claim["spec"]["warmPoolRef"] == {"name": pool_of(CANARY)}
    assert claim["metadata"]["labels"]["voicefleet.io/release"] == CANARY
    assert stable_pod in fake.warm(pool_of(STABLE))  # the other release's warm pod stays the pool's

    # Everything the cluster holds of the session: the claim, the pod (labels, annotations, every env), its Sandbox.
    pod = fake.pods[canary_pod]
    held = json.dumps([claim, pod, fake.sandboxes.get(canary_pod)])
    for what, value in secrets.items():
        assert value not in held, f"the session's {what} value is in the cluster's objects"
    assert pod["metadata"]["annotations"] == {"voicefleet.io/session": s.session_id}
    env_names = {e["name"] for c in pod["spec"]["containers"] for e in c.get("env") or []}
    assert "BOT_CHANNEL_TOKEN" not in env_names and "DAILY_TOKEN" not in env_names


async def test_a_release_without_a_pool_is_refused_naming_it_and_the_fix(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    add_release_pool(fake_k8s_sandbox, STABLE, 0)
    with pytest.raises(MachinesError) as refused:
        await claims.launch(spec(release=CANARY, image=IMAGES[CANARY]))
    assert refused.value.reason == "k8s_no_release_pool"
    assert "release canary" in refused.value.message and "Pools per release" in refused.value.message
    assert not fake_k8s_sandbox.calls_to("POST", "/sandboxclaims")  # no claim left to fail on the cluster

    add_release_pool(fake_k8s_sandbox, CANARY, 0)  # the deployer makes it: found at the next start, no restart
    claims.pools._listed_at -= 60  # past the pause between two lists after a miss
    await claims.launch(spec(release=CANARY, image=IMAGES[CANARY]))
    [create] = fake_k8s_sandbox.calls_to("POST", "/sandboxclaims")
    assert create.json()["spec"]["warmPoolRef"] == {"name": pool_of(CANARY)}


async def test_each_releases_pod_is_admitted_on_its_identity_alone_and_its_session_is_its_claims(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_release_pool(fake, STABLE, 1)
    add_release_pool(fake, CANARY, 2)
    [stable_pod] = await running(fake, pool_of(STABLE), 1)
    canary_pods = await running(fake, pool_of(CANARY), 2)

    def hello(pod: str, **kw: object) -> Hello:
        return Hello(**{"machine_id": pod, "capabilities": ("daily",), "identity": fake.token_of(pod), **kw})  # type: ignore[arg-type]

    for pod in (stable_pod, *canary_pods):
        granted = await claims.pool_identity.grant(hello(pod))
        assert not isinstance(granted, str) and (granted.kind, granted.subject) == ("idle", pod), granted
    s = spec(release=CANARY, image=IMAGES[CANARY])
    await claims.launch(s)
    machine = await claims.wait_started(s.session_id, timeout=20)
    granted = await claims.pool_identity.grant(hello(machine.machine_id, session_id=s.session_id))
    assert not isinstance(granted, str) and (granted.kind, granted.subject) == ("session", s.session_id), granted


def traffic(weights: dict[str, int]) -> tuple[Traffic, Catalogue]:
    catalogue = Catalogue((Release(STABLE, {"*": IMAGES[STABLE]}), Release(CANARY, {"*": IMAGES[CANARY]})))
    return Traffic(weights=weights, stable=STABLE, version=(1, "")), catalogue


async def test_each_releases_pool_is_sized_from_its_share_and_emptied_at_weight_zero(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake = fake_k8s_sandbox
    add_release_pool(fake, STABLE, 0)
    add_release_pool(fake, CANARY, 0)
    clock = Clock()
    pools = sizing(claims, clock, RESERVE_MIN_IDLE="1", RESERVE_MAX_IDLE="40", RESERVE_COLD_START_SECONDS="10")
    pools.follow(*traffic({STABLE: 90, CANARY: 10}))
    await starts(pools, clock, 30, every=1.0)  # a start a second, the deployment's: 90 % of them stable's

    def size(release: str) -> int:
        return int(fake.warm_pools[pool_of(release)]["spec"]["replicas"])

    assert size(STABLE) >= 1 and size(CANARY) >= 1  # each release keeps warm pods of its own
    assert size(STABLE) > size(CANARY)  # …in proportion to its share of the starts
    patches = fake.calls_to("PATCH", "/scale")
    assert all(p.json().keys() == {"spec"} and p.json()["spec"].keys() == {"replicas"} for p in patches)

    pools.follow(*traffic({STABLE: 100, CANARY: 0}))  # the canary rolled back
    await ticks(pools, clock, 1)
    assert size(CANARY) == 0  # at once: no window keeps a version no start takes
    assert size(STABLE) >= 1


async def test_a_retiring_releases_pool_is_emptied_by_the_dispatcher_that_no_longer_lists_it(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    """The stack keeps a dropped release's pool until its last session can have ended, labelled retiring;
    RELEASES no longer names it, so no weight of it is ever 0 here: its warm pods would hold nodes and the
    bots' `pods` quota (sized for one release's idle pods) until the pool goes, refusing starts at peak. A
    pool of a release not listed yet (a new one, made before the dispatcher that lists it) is left alone."""
    fake = fake_k8s_sandbox
    add_release_pool(fake, STABLE, 0)
    add_release_pool(fake, CANARY, 3)
    fake.warm_pools[pool_of(CANARY)]["metadata"]["labels"]["voicefleet.io/retiring"] = "true"
    fake.add_pool("voicefleet-bot-next", 2, *pool_spec(fake), labels={"voicefleet.io/release": "next"})
    clock = Clock()
    pools = sizing(claims, clock, RESERVE_MIN_IDLE="1", RESERVE_MAX_IDLE="40")
    pools.follow(Traffic(weights={STABLE: 100}, stable=STABLE, version=(1, "")),
                 Catalogue((Release(STABLE, {"*": IMAGES[STABLE]}),)))
    await ticks(pools, clock, 1)
    replicas = {name: int(pool["spec"]["replicas"]) for name, pool in fake.warm_pools.items()}
    assert replicas[pool_of(CANARY)] == 0  # at once, as a release at weight 0
    assert replicas[pool_of(STABLE)] >= 1 and replicas["voicefleet-bot-next"] == 2


def pool_spec(fake: FakeAgentSandbox) -> tuple[dict[str, Any], dict[str, str]]:
    settings = K8sSettings.from_env(env(fake))
    template = pod_body(settings, "template", image=IMAGES[STABLE], env={"BOT_CHANNEL_URL": CHANNEL_URL},
                        labels={}, annotations={}, deadline_seconds=None)
    return template["spec"], template["metadata"]["labels"]


async def test_a_role_that_may_not_list_pools_keeps_the_default_release_on_its_pool_and_names_the_grant(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox, caplog: pytest.LogCaptureFixture) -> None:
    fake = fake_k8s_sandbox
    add_pool(fake, 0)  # K8S_WARM_POOL, as a stack from before the pools per release makes it
    add_release_pool(fake, CANARY, 0)
    fake.fail(403, times=100, method="GET", path_suffix="/sandboxwarmpools", body={
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": "sandboxwarmpools.extensions.agents.x-k8s.io is forbidden: cannot list resource"})
    await claims.launch(spec())
    [create] = fake.calls_to("POST", "/sandboxclaims")
    assert create.json()["spec"]["warmPoolRef"] == {"name": POOL}
    with pytest.raises(MachinesError) as refused:
        await claims.launch(spec(release=CANARY, image=IMAGES[CANARY]))
    assert refused.value.reason == "k8s_no_release_pool"
    assert "grant the dispatcher's Role `list` on sandboxwarmpools" in caplog.text
