"""`K8S_MODE=agent-sandbox`'s `?wait=started` by a watch on the session's SandboxClaim
(dispatcher/machines/k8s/watch.py, as the pods mode's) against the fake API server's claim watches
(tests/fakes/k8s_sandbox.py): the binding seen from the create's version with not one read of the
claim, a broken watch opened again from the last version seen, a compacted version listed again then
watched, a claim deleted before it was bound, a failed claim's exit detail from its pod, the RBAC
verbs a refused watch names; and the fake's claim watches and field selectors held to the API server's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from dispatcher.machines.base import Machine, MachinesError, MachineState
from dispatcher.machines.k8s.sandbox import SandboxClaims
from tests.dispatcher.machines.test_k8s import spec
from tests.dispatcher.machines.test_k8s_sandbox import add_pool, env
from tests.dispatcher.machines.test_k8s_watch import events
from tests.fakes.k8s import NAMESPACE, TOKEN
from tests.fakes.k8s_sandbox import GROUP, FakeAgentSandbox
from tests.fakes.server import Call
from tests.support.waiting import until

GENEROUS = 600.0  # a wait's own deadline, far past any test's: an answer before it came from the watch
CLAIMS = f"/apis/{GROUP}/v1beta1/namespaces/{NAMESPACE}/sandboxclaims"


@pytest.fixture
async def claims(fake_k8s_sandbox: FakeAgentSandbox) -> AsyncIterator[SandboxClaims]:
    add_pool(fake_k8s_sandbox, 0)  # every claim cold: its pod stays Pending until the test runs it
    machines = SandboxClaims.from_env(env(fake_k8s_sandbox))
    yield machines
    await machines.aclose()


def watches(fake: FakeAgentSandbox) -> list[Call]:
    return [c for c in fake.calls_to("GET", "/sandboxclaims") if c.query.get("watch") == "1"]


def lists(fake: FakeAgentSandbox) -> list[Call]:
    return [c for c in fake.calls_to("GET", "/sandboxclaims") if c.path == CLAIMS and "watch" not in c.query]


def reads(fake: FakeAgentSandbox, name: str) -> list[Call]:
    return fake.calls_to("GET", f"/sandboxclaims/{name}")


async def watched(fake: FakeAgentSandbox, count: int) -> Call:
    calls = await until(lambda: len(watches(fake)) >= count and watches(fake), f"claim watch request {count}")
    return calls[count - 1]


async def answer(wait: asyncio.Task[Machine]) -> Machine:
    return await asyncio.wait_for(wait, 60)


async def cold_pod(fake: FakeAgentSandbox, name: str) -> None:
    await until(lambda: name in fake.pods, f"the cold Sandbox's pod {name}")


async def test_the_binding_is_seen_by_a_watch_from_the_creates_version_with_no_read_of_the_claim(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake, s = fake_k8s_sandbox, spec()
    created = await claims.launch(s)
    name = f"vf-{s.session_id}"
    assert created.machine.state is MachineState.STARTING
    wait = asyncio.create_task(claims.wait_started(s.session_id, GENEROUS))
    watch = await watched(fake, 1)
    assert watch.path == CLAIMS and watch.query["fieldSelector"] == f"metadata.name={name}"
    assert watch.query["resourceVersion"] == str(fake.claim_watches.versions_of(name)[0])  # the create's
    await cold_pod(fake, name)
    await until(lambda: fake.claims[name]["status"].get("conditions"), "the controller's Ready=False")
    assert not wait.done()  # bound to a Sandbox whose pod is Pending: the wait goes on
    fake.set_phase(name, "Running")
    machine = await answer(wait)
    assert machine.state is MachineState.STARTED and machine.machine_id == name
    assert reads(fake, name) == [] and lists(fake) == [] and len(watches(fake)) == 1  # the watch alone answered


async def test_a_broken_claim_watch_is_opened_again_from_the_last_version_it_saw(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake, s = fake_k8s_sandbox, spec()
    await claims.launch(s)
    name = f"vf-{s.session_id}"
    fake.claim_watches.cut_next(after=1)  # the connection drops after one event (a proxy's idle cut)
    wait = asyncio.create_task(claims.wait_started(s.session_id, GENEROUS))
    first = await watched(fake, 1)
    second = await watched(fake, 2)
    created, bound = fake.claim_watches.versions_of(name)[:2]  # the create, then the controller's first write
    assert (first.query["resourceVersion"], second.query["resourceVersion"]) == (str(created), str(bound))
    await cold_pod(fake, name)
    fake.set_phase(name, "Running")
    assert (await answer(wait)).state is MachineState.STARTED
    assert lists(fake) == [] and reads(fake, name) == []  # a broken watch is resumed, not listed again


async def test_a_compacted_version_is_listed_again_then_watched(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake, s = fake_k8s_sandbox, spec()
    await claims.launch(s)
    name = f"vf-{s.session_id}"
    await cold_pod(fake, name)
    fake.claim_watches.compact()  # etcd compacted: the create's version is gone (an ERROR event, 410 Expired)
    wait = asyncio.create_task(claims.wait_started(s.session_id, GENEROUS))
    first = await watched(fake, 1)
    second = await watched(fake, 2)
    [relist] = lists(fake)
    assert relist.query["fieldSelector"] == f"metadata.name={name}"
    assert int(second.query["resourceVersion"]) >= fake.claim_watches.floor > int(first.query["resourceVersion"])
    assert not wait.done()
    fake.set_phase(name, "Running")
    assert (await answer(wait)).state is MachineState.STARTED


async def test_a_claim_deleted_before_it_was_bound_has_ended(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake, s = fake_k8s_sandbox, spec()
    await claims.launch(s)
    name = f"vf-{s.session_id}"
    wait = asyncio.create_task(claims.wait_started(s.session_id, GENEROUS))
    await watched(fake, 1)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        gone = await client.request("DELETE", f"{fake.url}{CLAIMS}/{name}",
                                    json={"propagationPolicy": "Background"})  # gone at once: a DELETED event
    assert gone.status_code == 200
    machine = await answer(wait)
    assert machine.state is MachineState.ENDED and machine.detail == "deleted before it was bound"


async def test_a_claim_that_fails_while_starting_carries_its_bots_exit_from_the_pod(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake, s = fake_k8s_sandbox, spec()
    fake.expiring = False  # the pod stays while the claim is Finished: the controller has not expired it yet
    await claims.launch(s)
    name = f"vf-{s.session_id}"
    wait = asyncio.create_task(claims.wait_started(s.session_id, GENEROUS))
    await watched(fake, 1)
    await cold_pod(fake, name)
    fake.set_phase(name, "Failed", 3)
    machine = await answer(wait)
    assert machine.state is MachineState.FAILED and machine.detail == "exit code 3"
    assert machine == await claims.status(s.session_id)  # as a read of it says


async def test_a_refused_watch_names_the_watch_verb_on_sandboxclaims(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    s = spec()
    await claims.launch(s)
    fake_k8s_sandbox.fail(403, method="GET", path_suffix="/sandboxclaims", body={
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": 'sandboxclaims.extensions.agents.x-k8s.io is forbidden: cannot watch resource "sandboxclaims"'})
    with pytest.raises(MachinesError) as refused:
        await asyncio.wait_for(claims.wait_started(s.session_id, GENEROUS), 60)
    assert refused.value.reason == "k8s_unauthorized"
    assert "list, watch and delete sandboxclaims" in refused.value.message


async def test_another_replica_reads_the_claim_then_watches_from_its_version(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake, s = fake_k8s_sandbox, spec()
    other = SandboxClaims.from_env(env(fake))
    try:
        await claims.launch(s)
        name = f"vf-{s.session_id}"
        with pytest.raises(MachinesError, match="no sandboxclaim"):
            await other.wait_started("no-such-session", GENEROUS)
        await cold_pod(fake, name)
        wait = asyncio.create_task(other.wait_started(s.session_id, GENEROUS))
        watch = await watched(fake, 1)
        [read] = reads(fake, name)
        assert int(watch.query["resourceVersion"]) >= fake.claim_watches.versions_of(name)[1]  # past the binding
        fake.set_phase(name, "Running")
        assert (await answer(wait)).state is MachineState.STARTED and reads(fake, name) == [read]
    finally:
        await other.aclose()


# --- the fake's claim watches, as the API server's ---

async def test_the_fakes_claim_watch_sends_each_change_once_and_refuses_what_the_api_server_refuses(
        claims: SandboxClaims, fake_k8s_sandbox: FakeAgentSandbox) -> None:
    fake, s = fake_k8s_sandbox, spec()
    await claims.launch(s)
    await claims.launch(spec())  # another claim: not selected
    name = f"vf-{s.session_id}"
    await cold_pod(fake, name)
    created = fake.claim_watches.versions_of(name)[0]
    status, sent = await events(fake, CLAIMS, resourceVersion=str(created), fieldSelector=f"metadata.name={name}",
                                timeoutSeconds="1")
    assert status == 200 and sent and {e["type"] for e in sent} == {"MODIFIED"}  # not the create, not the other
    replayed = [int(e["object"]["metadata"]["resourceVersion"]) for e in sent]  # type: ignore[index]
    assert replayed == fake.claim_watches.versions_of(name)[1:]
    _, [now] = await events(fake, CLAIMS, fieldSelector=f"metadata.name={name}", timeoutSeconds="1")
    assert now["type"] == "ADDED"  # no version: the state now
    fake.claim_watches.compact()
    _, [gone] = await events(fake, CLAIMS, resourceVersion=str(created), timeoutSeconds="30")
    assert gone["type"] == "ERROR" and gone["object"]["code"] == 410  # type: ignore[index]
    for unsupported in ("spec.warmPoolRef.name=x", "status.phase=Running"):  # no selectableFields in the CRD
        status, _ = await events(fake, CLAIMS, fieldSelector=unsupported, timeoutSeconds="1")
        assert status == 400
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        listed = await client.get(f"{fake.url}{CLAIMS}", params={"fieldSelector": "metadata.namespace=elsewhere"})
    assert listed.status_code == 200 and listed.json()["items"] == []
