"""Bot pods spread over two Kubernetes clusters (K8S_CELLS), against two fake API servers, each with its own
dispatcher token, pods, quota and TokenReviews: each session's pod is created in its home cluster; a cluster
full, answering 429, past its ResourceQuota or never connected to sends the start to the other (the last
three drained); a retry at another replica meets its pod in the cell its record names; a bot's token is
reviewed by its own cell's cluster only; a cluster that does not answer makes a look-up a 503, never "not
found".
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import certifi
import pytest

from botchannel.contract import Hello
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.credentials import BotCredentials, BotGrant
from dispatcher.factory import configuration_problems
from dispatcher.machines.base import LaunchSpec, MachinesError
from dispatcher.machines.cells import PartialListing
from dispatcher.machines.k8s.cells import QUOTA, REFUSED, THROTTLED, UNREACHABLE, K8sCellMachines
from dispatcher.machines.k8s.served import cluster_problems
from dispatcher.machines.k8s.settings import K8sSettings
from dispatcher.outbound.provider_errors import as_api_error
from dispatcher.settings import SettingsError
from dispatcher.store.local import LocalClaims, LocalCoordination
from tests.fakes.k8s import FakeKubernetes
from tests.support import unconnectable
from tests.support.cells import check_cold_cells, homed_in
from tests.support.ports import free_port

LONG_DRAIN = 30.0  # a drained cluster stays so 15-30 s: past anything a test does after it
CHANNEL = "wss://d.example/bots/channel"


def spec(session_id: str) -> LaunchSpec:
    return LaunchSpec(session_id=session_id, body_digest="d" * 32, max_session_seconds=600,
                      transport="webrtc")


def cell(name: str, fake: FakeKubernetes, **extra: Any) -> dict[str, Any]:
    return {"name": name, "api_url": fake.url, "token_file": fake.token_file, **extra}


def cells_env(a: FakeKubernetes, b: FakeKubernetes, *, dead_b: bool = False, **extra: Any) -> dict[str, str]:
    """Cells a and b; no K8S_API_URL or K8S_TOKEN_FILE: each cell names its own. `dead_b`: b's API server
    is a port nothing answers on."""
    b_cell = cell("b", b, api_url=f"http://127.0.0.1:{free_port()}") if dead_b else cell("b", b)
    env = {k: v for k, v in a.env.items() if k not in ("K8S_API_URL", "K8S_TOKEN_FILE")}
    return {**env, "K8S_RETRY_DEADLINE_SECONDS": "2", "K8S_TIMEOUT_SECONDS": "2", "BOT_CHANNEL_URL": CHANNEL,
            "K8S_CELLS": json.dumps([cell("a", a, **extra.get("a_extra", {})), b_cell])}


def replica(env: dict[str, str], coordination: LocalCoordination) -> K8sCellMachines:
    machines = K8sCellMachines(K8sSettings.from_env(env), coordination, channel_url=CHANNEL, drain_base=LONG_DRAIN)
    # As the dispatcher wires it with its bot channel: session pods' bots dial on their identity alone.
    machines.watch_channels(BotChannels(BotCredentials("d" * 40), claims=LocalClaims(), identity=machines.identity))
    return machines


@pytest.fixture
def coordination() -> LocalCoordination:
    """The deployment's store, in this process: what every replica of a test shares."""
    return LocalCoordination()


@pytest.fixture
async def machines(fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes,
                   coordination: LocalCoordination) -> AsyncIterator[K8sCellMachines]:
    provider = replica(cells_env(fake_k8s, fake_k8s_cell), coordination)
    yield provider
    await provider.aclose()


def creates(fake: FakeKubernetes) -> int:
    return len(fake.calls_to("POST", "/pods"))


def views(machines: K8sCellMachines) -> dict[str, Any]:
    return {view.name: view for view in machines.views()}


async def test_each_session_runs_in_its_home_cluster_recorded_before_and_is_found_listed_and_stopped_there(
        machines: K8sCellMachines, fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes,
        coordination: LocalCoordination) -> None:
    for name, fake, other in (("a", fake_k8s, fake_k8s_cell), ("b", fake_k8s_cell, fake_k8s)):
        [session] = homed_in(machines, name)
        launched = await machines.launch(spec(session))
        pod = f"vf-{session}"
        assert launched.created and pod in fake.pods and pod not in other.pods
        assert await coordination.key_holders.held(f"k8s-cell:{session}") == name
        found = await machines.status(session)
        assert found is not None and found.machine_id == pod
        assert views(machines)[name].running == 1
        assert [m.session_id for m in await machines.list()] == [session]
        assert await machines.stop(session) is True and pod not in fake.standing()
        assert views(machines)[name].running == 0
    assert (creates(fake_k8s), creates(fake_k8s_cell)) == (1, 1)


async def test_a_full_cell_sends_the_start_to_the_next_without_draining_it(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes, coordination: LocalCoordination) -> None:
    machines = replica(cells_env(fake_k8s, fake_k8s_cell, a_extra={"max_pods": 1}), coordination)
    try:
        first, second = homed_in(machines, "a", 2)
        await machines.launch(spec(first))
        await machines.launch(spec(second))  # a holds its one pod: b takes it
        assert f"vf-{first}" in fake_k8s.pods and f"vf-{second}" in fake_k8s_cell.pods
        assert creates(fake_k8s) == 1 and views(machines)["a"].drained_until is None
        assert await coordination.key_holders.held(f"k8s-cell:{second}") == "b"
    finally:
        await machines.aclose()


async def test_a_cluster_answering_429_is_drained_at_its_first_answer(
        machines: K8sCellMachines, fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    fake_k8s.fail(429, method="POST", path_contains="/pods", times=5, retry_after=1)
    first, second = homed_in(machines, "a", 2)
    await machines.launch(spec(first))
    assert f"vf-{first}" in fake_k8s_cell.pods and creates(fake_k8s) == 1  # not retried there: b took it
    assert views(machines)["a"].reason == THROTTLED and views(machines)["a"].drained_until > time.time()
    await machines.launch(spec(second))  # meanwhile a is not asked again
    assert creates(fake_k8s) == 1 and f"vf-{second}" in fake_k8s_cell.pods


@pytest.mark.parametrize("unreachable", ["refused", "tls", "silent"])
async def test_a_cluster_whose_api_server_cannot_be_connected_to_is_drained_and_its_starts_go_to_the_other(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes, coordination: LocalCoordination,
        unreachable: str) -> None:
    """Nothing was sent (no connection: refused, a TLS handshake that failed, or none within the client's connect
    bound, below K8S_TIMEOUT_SECONDS), so no pod can be there: cluster a is drained at once, as after a 429,
    never retried there nor looked for."""
    with unconnectable.full_queue() as silent:
        dead = {"refused": {"api_url": f"http://127.0.0.1:{free_port()}"},  # nothing listens there
                "tls": {"api_url": fake_k8s.url.replace("http://", "https://"), "ca_file": certifi.where()},
                "silent": {"api_url": f"http://127.0.0.1:{silent}"}}[unreachable]
        await _launched_past(dead, fake_k8s, fake_k8s_cell, coordination)


async def _launched_past(dead: dict[str, str], fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes,
                         coordination: LocalCoordination) -> None:
    env = {**cells_env(fake_k8s, fake_k8s_cell, a_extra=dead), "K8S_TIMEOUT_SECONDS": "20"}
    machines = replica(env, coordination)
    machines.lost.look_pauses = (60.0,)  # a look for the pod would outlast the test's timeout
    try:
        first, second = homed_in(machines, "a", 2)
        async with asyncio.timeout(15):  # past the connect bound (3 s), short of the call's own timeout
            launched = await machines.launch(spec(first))
        assert launched.created and f"vf-{first}" in fake_k8s_cell.pods and not fake_k8s.pods
        assert await coordination.key_holders.held(f"k8s-cell:{first}") == "b"
        assert views(machines)["a"].reason == UNREACHABLE and views(machines)["a"].drained_until > time.time()
        await machines.launch(spec(second))  # meanwhile a is not asked again
        assert f"vf-{second}" in fake_k8s_cell.pods and creates(fake_k8s) == 0
    finally:
        await machines.aclose()


async def test_a_cluster_past_its_resource_quota_is_drained_and_its_starts_go_to_the_other(
        machines: K8sCellMachines, fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    fake_k8s.quota = 0
    first, second = homed_in(machines, "a", 2)
    await machines.launch(spec(first))
    assert f"vf-{first}" in fake_k8s_cell.pods and views(machines)["a"].reason == QUOTA
    await machines.launch(spec(second))
    assert f"vf-{second}" in fake_k8s_cell.pods and creates(fake_k8s) == 1


async def test_every_cluster_past_its_quota_is_a_503_naming_the_cells(
        machines: K8sCellMachines, fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    fake_k8s.quota = fake_k8s_cell.quota = 0
    [session] = homed_in(machines, "b")
    with pytest.raises(MachinesError) as refused:
        await machines.launch(spec(session))
    answer = as_api_error(refused.value)
    assert refused.value.reason == "k8s_cells_drained" and answer.status == 503
    assert re.fullmatch(rf"every k8s cell is drained: a for \d+s \({re.escape(QUOTA)}\); "
                        rf"b for \d+s \({re.escape(QUOTA)}\)", answer.message), answer.message
    assert (creates(fake_k8s), creates(fake_k8s_cell)) == (1, 1) and not fake_k8s.pods and not fake_k8s_cell.pods


async def test_a_cluster_refusing_its_cells_token_is_drained_and_the_others_take_its_starts(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes, coordination: LocalCoordination) -> None:
    """Each cell signs in with its own token: cluster a refusing it (here: b's token, 401) is a's alone."""
    machines = replica(cells_env(fake_k8s, fake_k8s_cell, a_extra={"token_file": fake_k8s_cell.token_file}),
                       coordination)
    try:
        [session] = homed_in(machines, "a")
        await machines.launch(spec(session))
        assert f"vf-{session}" in fake_k8s_cell.pods and not fake_k8s.pods and creates(fake_k8s) == 1
        assert views(machines)["a"].reason == REFUSED
    finally:
        await machines.aclose()


async def test_an_admission_refusal_drains_no_cluster(
        machines: K8sCellMachines, fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    """The stack's policy refuses the pod itself, as every cluster's would: no other cell is tried."""
    fake_k8s.admitted_images = {"registry.example/another@sha256:" + "2" * 64}
    [session] = homed_in(machines, "a")
    with pytest.raises(MachinesError) as refused:
        await machines.launch(spec(session))
    assert refused.value.reason == "k8s_rejected" and creates(fake_k8s_cell) == 0
    assert all(view.drained_until is None for view in machines.views())


async def test_a_create_unanswered_then_refused_is_never_sent_to_another_cluster(
        machines: K8sCellMachines, fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes,
        coordination: LocalCoordination) -> None:
    """The 5xx may have come after the pod was stored: the quota that answers its retry proves nothing."""
    machines.lost.look_pauses, machines.lost.watch_pauses = (0.05,), ()
    fake_k8s.fail(503, method="POST", path_contains="/pods")
    fake_k8s.quota = 0
    [session] = homed_in(machines, "a")
    with pytest.raises(MachinesError) as refused:
        await machines.launch(spec(session))
    assert refused.value.reason == "k8s_unavailable" and creates(fake_k8s_cell) == 0
    assert await coordination.key_holders.held(f"k8s-cell:{session}") == "a"  # looked for there, by anyone
    assert all(view.drained_until is None for view in machines.views())


async def test_a_retry_at_another_replica_meets_its_pod_in_the_cell_its_record_names(
        machines: K8sCellMachines, fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes,
        coordination: LocalCoordination) -> None:
    fake_k8s.quota = 0
    [session] = homed_in(machines, "a")
    first = await machines.launch(spec(session))  # a at its quota: the pod runs in b
    fake_k8s.quota = None  # a has room again; the other replica never saw it drained
    other = replica(cells_env(fake_k8s, fake_k8s_cell), coordination)
    try:
        again = await other.launch(spec(session))
        assert not again.created and again.machine.machine_id == first.machine.machine_id
        assert f"vf-{session}" not in fake_k8s.pods and creates(fake_k8s) == 1  # a's one refusal
        found = await other.status(session)
        assert found is not None and found.machine_id == first.machine.machine_id
    finally:
        await other.aclose()


async def test_a_bots_token_is_reviewed_by_its_own_cells_cluster_only(
        machines: K8sCellMachines, fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    channels = BotChannels(BotCredentials("d" * 40), claims=LocalClaims(), identity=machines.identity)
    machines.watch_channels(channels)
    assert channels.identity_only is not None
    [session] = homed_in(machines, "b")
    await machines.launch(spec(session))
    pod = f"vf-{session}"
    fake_k8s_cell.set_phase(pod, "Running")
    # A look-alike pod of the same name in cluster a (whoever may create pods there), with a's own token.
    await machines._members["a"].create_session(spec(session))
    fake_k8s.set_phase(pod, "Running")
    own, look_alike = fake_k8s_cell.token_of(pod), fake_k8s.token_of(pod)
    granted = await channels.identity_only.grant(Hello(machine_id=pod, identity=own, session_id=session))
    assert isinstance(granted, BotGrant) and (granted.kind, granted.subject) == ("session", session)
    refused = await channels.identity_only.grant(Hello(machine_id=pod, identity=look_alike, session_id=session))
    assert isinstance(refused, str) and "not authenticated" in refused, refused
    grant = BotGrant("session", session, int(time.time()) + 60)
    assert await machines.identity.refusal(grant, Hello(machine_id=pod, identity=own)) is None
    assert "not authenticated" in str(await machines.identity.refusal(grant, Hello(machine_id=pod,
                                                                                   identity=look_alike)))
    assert fake_k8s.calls_to("POST", "/tokenreviews") == []  # a never saw a bot's token
    assert len(fake_k8s_cell.calls_to("POST", "/tokenreviews")) == 4
    stranger = secrets.token_hex(12)  # never launched: no cell to ask
    assert "has no recorded cell" in str(await channels.identity_only.grant(
        Hello(machine_id=f"vf-{stranger}", identity=own)))


async def test_a_cluster_that_does_not_answer_makes_a_look_up_a_503_never_not_found(
        machines: K8sCellMachines, fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes,
        coordination: LocalCoordination) -> None:
    sessions = {name: homed_in(machines, name)[0] for name in ("a", "b")}
    for session in sessions.values():
        await machines.launch(spec(session))
    other = replica(cells_env(fake_k8s, fake_k8s_cell, dead_b=True), coordination)  # b out of its reach
    try:
        with pytest.raises(MachinesError) as unknown:
            await other.status(sessions["b"])
        assert unknown.value.reason == "k8s_cell_unavailable" and as_api_error(unknown.value).status == 503
        with pytest.raises(MachinesError):
            await other.stop(sessions["b"])
        listed = await other.list()
        assert isinstance(listed, PartialListing) and listed.missing == ("b",)
        assert [m.session_id for m in listed] == [sessions["a"]]
        assert views(other)["b"].unreadable is not None and views(other)["a"].unreadable is None
        assert f"vf-{sessions['b']}" in fake_k8s_cell.standing()
    finally:
        await other.aclose()


async def test_k8s_mode_with_cells_builds_them_and_the_config_check_names_a_missing_store(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    env = {k: v for k, v in cells_env(fake_k8s, fake_k8s_cell).items() if k != "BOT_CHANNEL_URL"}
    env["BOT_CHANNEL_TOKEN"] = "t" * 32
    await check_cold_cells("k8s", K8sCellMachines, env)  # no channel URL: every start cold (the reserve's: elsewhere)
    base = {**env, "DAILY_API_KEY": "k"}
    assert any("K8S_CELLS needs the shared store: set REDIS_URL" in problem
               for problem in configuration_problems(base)), configuration_problems(base)
    assert not any("K8S_CELLS" in p for p in configuration_problems({**base, "REDIS_URL": "redis://127.0.0.1:1"}))


async def test_each_cluster_is_asked_at_start_whether_the_bots_audience_is_its_own(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    """Each cell's cluster reviews its own bots' tokens: none of them may take that audience for its own."""
    env = {**cells_env(fake_k8s, fake_k8s_cell), "BOT_IDENTITY_AUDIENCE": "voicefleet-api"}
    assert await cluster_problems(env) == []
    fake_k8s_cell.api_audiences = ("voicefleet-api",)  # cluster b's --api-audiences
    [problem] = await cluster_problems(env)
    assert problem.startswith("K8S_CELLS cell b: BOT_IDENTITY_AUDIENCE='voicefleet-api' is one of the API server's")
    assert fake_k8s_cell.calls_to("POST", "/tokenreviews") and fake_k8s.calls_to("POST", "/tokenreviews")


BASE = {"K8S_NAMESPACE": "voicefleet-bots", "BOT_IMAGE": "registry.example/bot:1"}


def listed(*cells: dict[str, Any]) -> str:
    return json.dumps(list(cells))


A = {"name": "a", "api_url": "https://10.0.0.1", "token_file": "/cells/a/token", "ca_file": "/cells/a/ca.crt"}


@pytest.mark.parametrize(("cells", "said"), [
    ("not json", "K8S_CELLS is not JSON"),
    ("[]", "non-empty JSON list"),
    (listed({**A, "zone": "x"}), "unknown field 'zone'"),
    (listed({**A, "token": "eyJ..."}), "'token' is a credential, which never goes in the setting"),
    (listed(A, {**A, "api_url": "https://10.0.0.2"}), "names a cell twice: a"),
    (listed(A, {**A, "name": "b"}), "names a cluster and namespace twice: https://10.0.0.1 voicefleet-bots"),
    (listed({**A, "api_url": "http://10.0.0.1"}), r"api_url='http://10.0.0.1' must be https://"),
    (listed({**A, "api_url": "https://admin:s3cret@10.0.0.1"}),
     r"K8S_CELLS\[0\] \(a\): api_url='https://10.0.0.1' holds a user or password .*: a credential never goes"),
    (listed({**A, "api_url": "https://eyJtoken@10.0.0.1"}), "holds a user or password"),
    (listed({**A, "token_file": "token"}), "token_file must be an absolute path"),
    (listed({k: v for k, v in A.items() if k != "ca_file"}), "ca_file must be an absolute path"),
    (listed({**A, "namespace": "Not_A_Namespace"}), "is not a namespace name"),
    (listed({**A, "max_pods": 1.5}), "max_pods must be a whole number of at least 0"),
    (listed(*({**A, "name": f"c{i}", "api_url": f"https://10.0.0.{i}"} for i in range(51))), "at most 50"),
])
def test_a_wrong_cell_list_is_refused_with_the_way_forward(cells: str, said: str) -> None:
    with pytest.raises(SettingsError, match=said):
        K8sSettings.from_env({**BASE, "K8S_CELLS": cells})


@pytest.mark.parametrize("variable", ["K8S_CELLS", "K8S_API_URL"])
def test_an_api_url_holding_a_credential_is_refused_without_showing_it(variable: str) -> None:
    url = "https://admin:s3cret@10.0.0.1:6443/?token=t0ken"
    given = {"K8S_CELLS": listed({**A, "api_url": url})} if variable == "K8S_CELLS" else {"K8S_API_URL": url}
    with pytest.raises(SettingsError, match="holds a user or password") as refused:
        K8sSettings.from_env({**BASE, **given})
    assert "https://10.0.0.1:6443/" in str(refused.value)
    assert not any(secret in str(refused.value) for secret in ("admin", "s3cret", "t0ken")), refused.value


def test_cells_are_refused_with_the_agent_sandbox_mode_and_a_cell_takes_the_deployments_namespace() -> None:
    with pytest.raises(SettingsError, match="K8S_CELLS with K8S_MODE=agent-sandbox"):
        K8sSettings.from_env({**BASE, "K8S_CELLS": listed(A), "K8S_MODE": "agent-sandbox"})
    settings = K8sSettings.from_env({**BASE, "K8S_CELLS": listed(A, {**A, "name": "b", "namespace": "bots-b",
                                                                     "max_pods": 40})})
    a, b = (settings.for_cell(c) for c in settings.cells)
    assert (a.api_url, a.token_file, a.ca_file, a.namespace) == (
        "https://10.0.0.1", "/cells/a/token", "/cells/a/ca.crt", "voicefleet-bots")
    assert b.namespace == "bots-b" and settings.cells[1].max_pods == 40 and a.cells == ()
