"""Kubernetes `?wait=started` by a watch on the pod (dispatcher/machines/k8s/watch.py) against the fake API
server's watches (tests/fakes/k8s_watch.py): the start seen from the create's version with no polling, a
broken watch opened again from the last version seen, a version too old (410 as an ERROR event or as
HTTP) listed again then watched, a failed or evicted pod answered at once, the wait's deadline; and the
fake's own watches held to the API server's behaviour."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator

import pytest

from dispatcher.machines.base import LaunchSpec, Machine, MachinesError, MachineState, WaitTimeout
from dispatcher.machines.k8s.provider import K8sMachines
from tests.fakes.k8s import NAMESPACE, TOKEN, FakeKubernetes
from tests.fakes.server import Call
from tests.support.http_client import api_client
from tests.support.waiting import until

GENEROUS = 600.0  # a wait's own deadline, far past any test's: an answer before it came from the watch


def spec() -> LaunchSpec:
    return LaunchSpec(session_id=secrets.token_hex(12), body_digest="d" * 32, max_session_seconds=600)


@pytest.fixture
async def k8s(fake_k8s: FakeKubernetes) -> AsyncIterator[K8sMachines]:
    machines = K8sMachines.from_env({**fake_k8s.env, "K8S_RETRY_DEADLINE_SECONDS": "3"})
    yield machines
    await machines.aclose()


def watches(fake: FakeKubernetes) -> list[Call]:
    return [c for c in fake.calls_to("GET", "/pods") if c.query.get("watch") == "1"]


def lists(fake: FakeKubernetes) -> list[Call]:
    return [c for c in fake.calls_to("GET", "/pods") if c.path.endswith("/pods") and "watch" not in c.query]


def version(fake: FakeKubernetes, name: str) -> str:
    return str(fake.pods[name]["metadata"]["resourceVersion"])


async def watched(fake: FakeKubernetes, count: int) -> Call:
    """The `count`th watch request, once the fake has it."""
    calls = await until(lambda: len(watches(fake)) >= count and watches(fake), f"watch request {count}")
    return calls[count - 1]


async def answer(wait: asyncio.Task[Machine]) -> Machine:
    return await asyncio.wait_for(wait, 60)


async def test_a_start_is_seen_by_a_watch_from_the_creates_version_with_no_polling(
        k8s: K8sMachines, fake_k8s: FakeKubernetes) -> None:
    s = spec()
    name = (await k8s.launch(s)).machine.machine_id
    created = version(fake_k8s, name)
    wait = asyncio.create_task(k8s.wait_started(s.session_id, GENEROUS))
    watch = await watched(fake_k8s, 1)
    assert watch.path == f"/api/v1/namespaces/{NAMESPACE}/pods"
    assert watch.query["fieldSelector"] == f"metadata.name={name}" and watch.query["resourceVersion"] == created
    assert 1 <= int(watch.query["timeoutSeconds"]) <= 240
    assert not wait.done()  # the pod is Pending: the wait goes on
    fake_k8s.set_phase(name, "Running")
    machine = await answer(wait)
    assert machine.state is MachineState.STARTED and machine.machine_id == name
    assert fake_k8s.calls_to("GET", f"/pods/{name}") == [] and lists(fake_k8s) == []  # not one read: the watch


async def test_a_broken_watch_is_opened_again_from_the_last_version_it_saw(
        k8s: K8sMachines, fake_k8s: FakeKubernetes) -> None:
    s = spec()
    name = (await k8s.launch(s)).machine.machine_id
    fake_k8s.watches.cut_next(after=1)  # the connection drops after one event (a proxy's idle cut)
    wait = asyncio.create_task(k8s.wait_started(s.session_id, GENEROUS))
    first = await watched(fake_k8s, 1)
    fake_k8s.set_phase(name, "Pending")  # the kubelet's status write: one event, then the cut
    seen = version(fake_k8s, name)
    second = await watched(fake_k8s, 2)
    assert second.query["resourceVersion"] == seen != first.query["resourceVersion"]
    assert not wait.done()
    fake_k8s.set_phase(name, "Running")
    assert (await answer(wait)).state is MachineState.STARTED
    assert lists(fake_k8s) == []  # a broken watch is resumed, not listed again


async def test_a_version_the_history_dropped_is_listed_again_then_watched(
        k8s: K8sMachines, fake_k8s: FakeKubernetes) -> None:
    s = spec()
    name = (await k8s.launch(s)).machine.machine_id
    fake_k8s.set_phase(name, "Pending")
    fake_k8s.watches.compact()  # etcd compacted: the create's version is gone (an ERROR event, 410 Expired)
    wait = asyncio.create_task(k8s.wait_started(s.session_id, GENEROUS))
    await watched(fake_k8s, 1)
    second = await watched(fake_k8s, 2)
    [relist] = lists(fake_k8s)
    assert relist.query["fieldSelector"] == f"metadata.name={name}"
    assert second.query["resourceVersion"] == str(fake_k8s.watches.latest)  # the list's version
    fake_k8s.set_phase(name, "Running")
    assert (await answer(wait)).state is MachineState.STARTED


async def test_an_http_410_is_listed_again_and_a_pod_started_meanwhile_is_answered_by_the_list(
        k8s: K8sMachines, fake_k8s: FakeKubernetes) -> None:
    s = spec()
    name = (await k8s.launch(s)).machine.machine_id
    fake_k8s.set_phase(name, "Running")
    gone = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Gone",
            "message": "too old resource version", "code": 410}
    fake_k8s.fail(410, method="GET", path_suffix="/pods", body=gone)  # the watch, answered 410 as an HTTP status
    machine = await asyncio.wait_for(k8s.wait_started(s.session_id, GENEROUS), 60)
    assert machine.state is MachineState.STARTED
    assert len(watches(fake_k8s)) == 1 and len(lists(fake_k8s)) == 1  # the list answered: no second watch


@pytest.mark.parametrize(("phase", "code", "reason", "detail"), [
    ("Failed", 137, "Evicted", "Evicted: the kubelet: Evicted"), ("Failed", 3, None, "exit code 3"),
    ("Succeeded", 0, None, None)])
async def test_a_pod_that_fails_or_ends_while_starting_is_answered_at_once(
        k8s: K8sMachines, fake_k8s: FakeKubernetes, phase: str, code: int | None, reason: str | None,
        detail: str | None) -> None:
    s = spec()
    name = (await k8s.launch(s)).machine.machine_id
    wait = asyncio.create_task(k8s.wait_started(s.session_id, GENEROUS))
    await watched(fake_k8s, 1)
    fake_k8s.set_phase(name, phase, code, reason=reason)
    machine = await answer(wait)
    expected = MachineState.FAILED if phase == "Failed" else MachineState.ENDED
    assert machine.state is expected and machine.detail == detail


async def test_a_pod_deleted_before_it_started_has_ended(k8s: K8sMachines, fake_k8s: FakeKubernetes) -> None:
    s = spec()
    await k8s.launch(s)
    wait = asyncio.create_task(k8s.wait_started(s.session_id, GENEROUS))
    await watched(fake_k8s, 1)
    await k8s.stop(s.session_id)  # no process: the pod is gone at once, a DELETED event
    assert (await answer(wait)).state is MachineState.ENDED


async def test_the_wait_ends_at_its_deadline_while_the_pod_stays_pending(
        k8s: K8sMachines, fake_k8s: FakeKubernetes) -> None:
    s = spec()
    await k8s.launch(s)
    with pytest.raises(WaitTimeout):
        await asyncio.wait_for(k8s.wait_started(s.session_id, 1.0), 60)


async def test_another_replica_reads_the_pod_then_watches_from_its_version(fake_k8s: FakeKubernetes) -> None:
    s = spec()
    launcher, other = (K8sMachines.from_env(fake_k8s.env) for _ in range(2))
    try:
        name = (await launcher.launch(s)).machine.machine_id
        with pytest.raises(MachinesError, match="no pod"):
            await other.wait_started("no-such-session", GENEROUS)
        wait = asyncio.create_task(other.wait_started(s.session_id, GENEROUS))
        watch = await watched(fake_k8s, 1)
        assert len(fake_k8s.calls_to("GET", f"/pods/{name}")) == 1
        assert watch.query["resourceVersion"] == version(fake_k8s, name)
        fake_k8s.set_phase(name, "Running")
        assert (await answer(wait)).state is MachineState.STARTED
    finally:
        await launcher.aclose()
        await other.aclose()


async def test_a_refused_credential_ends_the_wait_with_the_api_servers_words(
        k8s: K8sMachines, fake_k8s: FakeKubernetes) -> None:
    s = spec()
    await k8s.launch(s)
    fake_k8s.fail(403, method="GET", path_suffix="/pods", body={
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": 'pods is forbidden: cannot watch resource "pods"'})
    with pytest.raises(MachinesError, match="cannot watch") as raised:
        await asyncio.wait_for(k8s.wait_started(s.session_id, GENEROUS), 60)
    assert raised.value.reason == "k8s_unauthorized"


# --- the fake's watches, as the API server's ---

async def events(fake: FakeKubernetes, collection: str = f"/api/v1/namespaces/{NAMESPACE}/pods",
                 **params: str) -> tuple[int, list[dict[str, object]]]:
    """A watch of `collection`: its status and every event it sent until the fake ended it."""
    async with api_client(base_url=fake.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
        async with http.stream("GET", collection, params={"watch": "1", **params}) as got:
            lines = [json.loads(line) async for line in got.aiter_lines() if line.strip()]
            return got.status_code, lines


async def test_the_fakes_watch_sends_the_changes_after_a_version_then_ends_at_its_timeout(
        k8s: K8sMachines, fake_k8s: FakeKubernetes) -> None:
    s, other = spec(), spec()
    name = (await k8s.launch(s)).machine.machine_id
    await k8s.launch(other)
    created = version(fake_k8s, name)
    fake_k8s.set_phase(name, "Running")
    status, sent = await events(fake_k8s, resourceVersion=created, fieldSelector=f"metadata.name={name}",
                                timeoutSeconds="1")
    assert status == 200
    assert [(e["type"], e["object"]["metadata"]["resourceVersion"]) for e in sent] == [  # type: ignore[index]
        ("MODIFIED", version(fake_k8s, name))]  # not the create (at the version given), not the other pod
    status, sent = await events(fake_k8s, fieldSelector=f"metadata.name={name}", timeoutSeconds="1")
    assert [e["type"] for e in sent] == ["ADDED"]  # no version: the state now


async def test_the_fakes_watch_refuses_a_dropped_or_future_version_and_an_unknown_field(
        k8s: K8sMachines, fake_k8s: FakeKubernetes) -> None:
    name = (await k8s.launch(spec())).machine.machine_id
    old = version(fake_k8s, name)
    fake_k8s.set_phase(name, "Running")
    fake_k8s.watches.compact()
    status, [gone] = await events(fake_k8s, resourceVersion=old, timeoutSeconds="30")
    assert status == 200 and gone["type"] == "ERROR"
    assert gone["object"]["code"] == 410 and gone["object"]["reason"] == "Expired"  # type: ignore[index]
    _, [ahead] = await events(fake_k8s, resourceVersion=str(fake_k8s.watches.latest + 100), timeoutSeconds="30")
    assert ahead["object"]["code"] == 504  # type: ignore[index]
    status, _ = await events(fake_k8s, fieldSelector="metadata.labels=x", timeoutSeconds="1")
    assert status == 400
