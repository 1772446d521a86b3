"""Compute Engine VMs spread over two GCP projects (GCE_CELLS), against the fake Compute API holding
each project's own instances, templates, quotas and grants: each session's VM is inserted in its
home project; a project answering a rate or resource quota, refusing the dispatcher or missing its
template is drained and the insert goes to the other; an insert whose answer was lost stays in its
project; a retry at another replica meets its VM through the store; a bot's token is checked
against the project its VM was found in.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import AsyncIterator

import pytest

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.base import MachinesError, MachineState
from dispatcher.machines.cells import PartialListing
from dispatcher.machines.gce.cell_reserve import GceCellWarmMachines
from dispatcher.machines.gce.cells import GceCellMachines
from dispatcher.machines.gce.settings import GceSettings
from dispatcher.machines.releases import ReleaseImageMissing
from dispatcher.outbound.provider_errors import as_api_error
from dispatcher.settings import SettingsError
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.gce import CHANNEL_AUDIENCE, FakeGce, rate_limit_body
from tests.support.cells import admin_status, check_cells_mode, homed_in

PROJECTS = {"a": "vf-cell-a", "b": "vf-cell-b"}
LONG_DRAIN = 30.0  # a drained project stays so 15-30 s: past anything a test does after it


def cells_env(fake: FakeGce) -> dict[str, str]:
    cells = [{"name": cell, "project": project} for cell, project in PROJECTS.items()]
    return {**fake.env, "GCE_RETRY_DEADLINE_SECONDS": "3", "GCE_CELLS": json.dumps(cells)}


@pytest.fixture
def fake(fake_gce: FakeGce) -> FakeGce:
    for project in PROJECTS.values():
        fake_gce.add_project(project)
    return fake_gce


@pytest.fixture
def coordination() -> LocalCoordination:
    """The deployment's store, in this process: what every replica of a test shares."""
    return LocalCoordination()


def replica(fake: FakeGce, coordination: LocalCoordination, **env: str) -> GceCellMachines:
    return GceCellMachines(GceSettings.from_env({**cells_env(fake), **env}), coordination, drain_base=LONG_DRAIN)


@pytest.fixture
async def machines(fake: FakeGce, coordination: LocalCoordination) -> AsyncIterator[GceCellMachines]:
    provider = replica(fake, coordination)
    yield provider
    await provider.aclose()


def inserts_in(fake: FakeGce, cell: str) -> int:
    return len([c for c in fake.calls_to("POST", "/instances") if f"/projects/{PROJECTS[cell]}/" in c.path
                and not c.path.endswith("/setLabels")])


def projects_of(fake: FakeGce, session: str) -> list[str]:
    return [p for p, project in fake.projects.items() if f"vf-{session}" in project.instances]


def views(machines: GceCellMachines) -> dict[str, object]:
    return {view.name: view for view in machines.views()}


async def test_each_session_runs_in_its_home_project_and_is_found_and_stopped_there(
        machines: GceCellMachines, fake: FakeGce) -> None:
    for cell in ("a", "b"):
        [session] = homed_in(machines, cell)
        launched = await machines.launch(spec(session))
        assert launched.created and projects_of(fake, session) == [PROJECTS[cell]]
        insert = fake.calls_to("POST", f"/projects/{PROJECTS[cell]}/zones/")[-1]
        assert insert.query["sourceInstanceTemplate"] == f"projects/{PROJECTS[cell]}/global/instanceTemplates/" \
                                                         "voicefleet-bot"  # the cell's own template
        found = await machines.status(session)
        assert found is not None and found.machine_id == launched.machine.machine_id
        assert {v.name: v.running for v in machines.views()}[cell] == 1
        assert [m.session_id for m in await machines.list()] == [session]
        assert await machines.stop(session) is True and projects_of(fake, session) == []
        assert {v.name: v.running for v in machines.views()}[cell] == 0
    assert (inserts_in(fake, "a"), inserts_in(fake, "b")) == (1, 1)
    assert fake.instances == {}  # the deployment's own project runs nothing: it is not a cell


async def test_a_project_past_its_rate_quota_is_drained_at_its_first_answer(
        machines: GceCellMachines, fake: FakeGce) -> None:
    fake.fail(403, body=rate_limit_body(), method="POST", path_contains=f"/projects/{PROJECTS['b']}/", times=5)
    first, second = homed_in(machines, "b", 2)
    await machines.launch(spec(first))
    assert projects_of(fake, first) == [PROJECTS["a"]] and inserts_in(fake, "b") == 1  # not retried there
    assert views(machines)["b"].reason == "rateLimitExceeded"  # type: ignore[attr-defined]
    await machines.launch(spec(second))  # meanwhile b is not asked again
    assert inserts_in(fake, "b") == 1 and projects_of(fake, second) == [PROJECTS["a"]]


async def test_a_project_at_its_instance_quota_is_drained_and_its_sessions_run_in_the_other(
        machines: GceCellMachines, fake: FakeGce) -> None:
    fake.projects[PROJECTS["a"]].max_instances = 0
    [session] = homed_in(machines, "a")
    await machines.launch(spec(session))
    assert projects_of(fake, session) == [PROJECTS["b"]] and inserts_in(fake, "a") == 1
    drained = views(machines)["a"]
    assert drained.reason == "quotaExceeded" and drained.drained_until >= time.time() + 14  # type: ignore[attr-defined]


@pytest.mark.parametrize(("break_it", "reason"), [
    (lambda project: setattr(project, "denied", True), "its grant was refused (the dispatcher's log says how)"),
    (lambda project: setattr(project, "project", "vf-elsewhere"),  # its template is not there: 404
     "its instance template was not found (the dispatcher's log says how)"),
])
async def test_a_project_that_refuses_the_dispatcher_or_lacks_its_template_is_drained(
        machines: GceCellMachines, fake: FakeGce, break_it: object, reason: str) -> None:
    break_it(fake.projects[PROJECTS["a"]])  # type: ignore[operator]
    [session] = homed_in(machines, "a")
    await machines.launch(spec(session))
    assert projects_of(fake, session) == [PROJECTS["b"]]
    assert views(machines)["a"].reason == reason  # type: ignore[attr-defined]


async def test_the_dispatchers_own_sign_in_failing_drains_no_project(
        machines: GceCellMachines, fake: FakeGce) -> None:
    async def no_sign_in() -> dict[str, str]:
        raise MachinesError("gce_unauthorized", "gce: Google refused the dispatcher's credentials (RefreshError)")

    machines._auth.headers = no_sign_in  # type: ignore[method-assign]
    [session] = homed_in(machines, "a")
    with pytest.raises(MachinesError) as refused:
        await machines.launch(spec(session))
    assert refused.value.reason == "gce_unauthorized"
    assert all(view.drained_until is None for view in machines.views()) and fake.calls_to("POST") == []


async def test_every_project_refusing_is_a_503_naming_the_cells(machines: GceCellMachines, fake: FakeGce) -> None:
    for project in PROJECTS.values():
        fake.projects[project].max_instances = 0
    [session] = homed_in(machines, "b")
    with pytest.raises(MachinesError) as refused:
        await machines.launch(spec(session))
    answer = as_api_error(refused.value)
    assert refused.value.reason == "gce_cells_drained" and answer.status == 503
    assert re.fullmatch(r"every gce cell is drained: a for \d+s \(quotaExceeded\); b for \d+s \(quotaExceeded\)",
                        answer.message), answer.message
    assert (inserts_in(fake, "a"), inserts_in(fake, "b")) == (1, 1)


async def test_the_last_open_project_retries_its_429s_then_is_drained(
        machines: GceCellMachines, fake: FakeGce) -> None:
    fake.projects[PROJECTS["a"]].max_instances = 0
    fake.fail(429, method="POST", path_contains=f"/projects/{PROJECTS['b']}/", times=100)
    [session] = homed_in(machines, "a")
    with pytest.raises(MachinesError) as refused:
        await machines.launch(spec(session))
    assert refused.value.reason == "gce_cells_drained" and inserts_in(fake, "b") > 1  # retried: nowhere else
    assert views(machines)["b"].reason == "rateLimitExceeded" and fake.instances == {}  # type: ignore[attr-defined]


async def test_an_insert_answered_with_a_5xx_then_a_quota_is_never_sent_to_another_project(
        machines: GceCellMachines, fake: FakeGce, coordination: LocalCoordination) -> None:
    """The 5xx try may have made the VM: the quota that answers its retry proves nothing."""
    machines.lost.look_pauses, machines.lost.watch_pauses = (0.05,), ()
    a = f"/projects/{PROJECTS['a']}/"
    fake.fail(503, method="POST", path_contains=a)
    fake.fail(403, body=rate_limit_body(), method="POST", path_contains=a, times=5)
    [session] = homed_in(machines, "a")
    with pytest.raises(MachinesError) as refused:
        await machines.launch(spec(session))
    assert refused.value.reason == "gce_unavailable" and inserts_in(fake, "b") == 0
    tries = [c.query["requestId"] for c in fake.calls_to("POST", a)]
    assert len(tries) == 2 and len(set(tries)) == 1  # retried as the same operation
    assert await coordination.key_holders.held("gce-cell:" + session) == "a"  # looked for there, by anyone
    assert all(view.drained_until is None for view in machines.views())
    fake.reset_knobs()
    fake.projects[PROJECTS["a"]].max_instances = 0  # a retry meets a full a: its refusal cannot send it to b
    with pytest.raises(MachinesError) as again:
        await machines.launch(spec(session))
    assert again.value.reason == "gce_capacity" and inserts_in(fake, "b") == 0


async def test_an_insert_accepted_then_failed_for_a_quota_drains_its_project(
        machines: GceCellMachines, fake: FakeGce) -> None:
    fake.projects[PROJECTS["a"]].insert_error = "QUOTA_EXCEEDED"
    first, second = homed_in(machines, "a", 2)
    assert (await machines.launch(spec(first))).created  # accepted: the operation fails later
    failed = await machines.status(first)
    assert failed is not None and failed.state is MachineState.FAILED and failed.detail == "QUOTA_EXCEEDED"
    await machines.status(first)  # polled again: drained once
    assert views(machines)["a"].reason == "QUOTA_EXCEEDED"  # type: ignore[attr-defined]
    await machines.launch(spec(second))
    assert projects_of(fake, second) == [PROJECTS["b"]] and inserts_in(fake, "a") == 1


async def test_a_retry_at_another_replica_meets_the_vm_in_the_project_its_record_names(
        machines: GceCellMachines, fake: FakeGce, coordination: LocalCoordination) -> None:
    fake.projects[PROJECTS["a"]].max_instances = 0
    [session] = homed_in(machines, "a")
    first = await machines.launch(spec(session))  # a full: the VM runs in b
    fake.projects[PROJECTS["a"]].max_instances = None  # a has room again; the other replica never saw it drained
    other = replica(fake, coordination)
    try:
        again = await other.launch(spec(session))
        assert not again.created and again.machine.machine_id == first.machine.machine_id
        assert projects_of(fake, session) == [PROJECTS["b"]] and inserts_in(fake, "a") == 1  # a's one refusal
        found = await other.status(session)
        assert found is not None and found.machine_id == first.machine.machine_id
    finally:
        await other.aclose()


async def test_a_bots_token_must_name_the_project_its_vm_was_found_in(
        machines: GceCellMachines, fake: FakeGce) -> None:
    [session] = homed_in(machines, "b")
    name = (await machines.launch(spec(session))).machine.machine_id
    b, a = fake.projects[PROJECTS["b"]], fake.projects[PROJECTS["a"]]
    b.set_status(name, "RUNNING")
    grant = BotGrant("session", session, int(time.time()) + 60)
    own = b.identity_token(name, CHANNEL_AUDIENCE)
    assert await machines.identity.refusal(grant, Hello(machine_id=name, identity=own)) is None
    of_a = a.identity_token(name, CHANNEL_AUDIENCE)  # a VM of that name in the other project
    refused = await machines.identity.refusal(grant, Hello(machine_id=name, identity=of_a))
    assert refused is not None and "project_id" in refused and PROJECTS["a"] in refused, refused
    stranger = BotGrant("session", homed_in(machines, "a")[0], int(time.time()) + 60)  # no VM anywhere
    assert await machines.identity.refusal(stranger, Hello(machine_id=name, identity=own)) == (
        f"no instance of session {stranger.subject} in any cell")


async def test_a_project_that_cannot_be_read_is_unreadable_never_not_found(
        machines: GceCellMachines, fake: FakeGce) -> None:
    sessions = {cell: homed_in(machines, cell)[0] for cell in ("a", "b")}
    for session in sessions.values():
        await machines.launch(spec(session))
    fake.projects[PROJECTS["a"]].denied = True
    listed = await machines.list()
    assert isinstance(listed, PartialListing) and listed.missing == ("a",)
    assert [m.session_id for m in listed] == [sessions["b"]]
    assert views(machines)["a"].unreadable == "its instances could not be listed (gce_unauthorized)"  # type: ignore[attr-defined]
    with pytest.raises(MachinesError) as unknown:
        await machines.status(sessions["a"])
    assert unknown.value.reason == "gce_cell_unavailable" and as_api_error(unknown.value).status == 503


async def test_the_status_shows_each_project_cell(machines: GceCellMachines, fake: FakeGce) -> None:
    fake.projects[PROJECTS["a"]].max_instances = 0
    for session in homed_in(machines, "a", 2):
        await machines.launch(spec(session))
    cells = {cell["name"]: cell for cell in (await admin_status(machines))["cells"]}
    assert cells["a"]["drained_until"] > time.time() and cells["a"]["reason"] == "quotaExceeded"
    assert (cells["b"]["running"], cells["b"]["drained_until"], cells["b"]["unreadable"]) == (2, None, None)


async def test_gce_mode_with_cells_builds_the_cells_and_a_bad_list_is_named_by_the_config_check(
        fake: FakeGce) -> None:
    await check_cells_mode("gce", "GCE_CELLS", GceCellMachines, cells_env(fake), CHANNEL_AUDIENCE,
                           warm_type=GceCellWarmMachines)  # with a channel: the reserve runs over the cells


@pytest.mark.parametrize(("cells", "said"), [
    ("not json", "GCE_CELLS is not JSON"),
    ("[]", "non-empty JSON list"),
    ('[{"name": "a"}]', "project must be a GCP project id"),
    ('[{"name": "a", "project": "vf-cell-a", "job": "x"}]', "unknown field 'job'"),
    ('[{"name": "a", "project": "vf-cell-a"}, {"name": "b", "project": "vf-cell-a"}]',
     "names a project and zone twice: vf-cell-a europe-west1-b"),
    ('[{"name": "a", "project": "vf-cell-a", "max_instances": 0}]', "max_instances"),
    ('[{"name": "a", "project": "vf-cell-a", "zone": "europe-west1"}]', "zone must be a Compute Engine zone"),
    ('[{"name": "a", "project": "vf-cell-a", "instance_template": "projects/p/global/instanceTemplates/t"}]',
     "instance_template must be a global instance template's name"),
])
def test_a_wrong_cell_list_is_refused_with_the_way_forward(cells: str, said: str) -> None:
    env = {"GCE_PROJECT": "vf-test", "GCE_ZONE": "europe-west1-b", "GCE_INSTANCE_TEMPLATE": "vf-bot",
           "GCE_CELLS": cells}
    with pytest.raises(SettingsError, match=said):
        GceSettings.from_env(env)


def test_a_cell_takes_the_deployments_zone_and_template_name_in_its_own_project_unless_it_names_its_own() -> None:
    env = {"GCE_PROJECT": "vf-test", "GCE_ZONE": "europe-west1-b", "GCE_INSTANCE_TEMPLATE": "vf-bot",
           "GCE_CELLS": json.dumps([{"name": "a", "project": "vf-cell-a"},
                                    {"name": "b", "project": "vf-cell-b", "zone": "us-central1-a",
                                     "instance_template": "bot-b", "max_instances": 900}])}
    settings = GceSettings.from_env(env)
    a, b = (settings.for_cell(cell) for cell in settings.cells)
    assert (a.zone, a.template_path) == ("europe-west1-b", "projects/vf-cell-a/global/instanceTemplates/vf-bot")
    assert (b.zone, b.template_path) == ("us-central1-a", "projects/vf-cell-b/global/instanceTemplates/bot-b")
    release = "projects/vf-test/global/instanceTemplates/v2"  # as the stack names a release's: the same name there
    assert a.path_of(release) == "projects/vf-cell-a/global/instanceTemplates/v2"
    assert settings.cells[1].max_instances == 900


async def test_a_401_for_the_dispatchers_own_token_drains_no_project(
        machines: GceCellMachines, fake: FakeGce) -> None:
    fake.fail(401, path_contains="/compute/v1/projects/", times=100)  # the one token, refused by every project
    [session] = homed_in(machines, "a")
    with pytest.raises(MachinesError) as refused:
        await machines.launch(spec(session))
    assert refused.value.reason == "gce_unauthorized"
    assert all(view.drained_until is None for view in machines.views())


async def test_a_release_template_missing_in_one_project_goes_to_a_project_that_has_it(
        machines: GceCellMachines, fake: FakeGce) -> None:
    fake.projects[PROJECTS["b"]].add_template("voicefleet-bot-r2", **{"bot-image": "r2"})
    [session] = homed_in(machines, "a")
    release = dataclasses.replace(spec(session), image="voicefleet-bot-r2", release="r2")
    launched = await machines.launch(release)
    assert launched.created and projects_of(fake, session) == [PROJECTS["b"]]
    assert all(view.drained_until is None for view in machines.views())  # project a still serves other releases


async def test_a_release_template_in_no_project_names_them_and_what_to_make(
        machines: GceCellMachines, fake: FakeGce) -> None:
    [session] = homed_in(machines, "a")
    release = dataclasses.replace(spec(session), image="voicefleet-bot-r2", release="r2")
    with pytest.raises(ReleaseImageMissing) as missing:
        await machines.launch(release)
    assert all(project in str(missing.value) for project in PROJECTS.values())
    assert "voicefleet-bot-r2" in missing.value.public_message
    assert all(view.drained_until is None for view in machines.views())
    assert projects_of(fake, session) == []



async def test_two_zones_of_one_project_share_its_insert_pace(fake: FakeGce, coordination: LocalCoordination) -> None:
    """Compute Engine's API rate is the project's, whichever zone an insert names: the dispatcher paces the
    inserts of every cell of one project together (one bucket), not each zone's at the project's full rate."""
    cells = [{"name": "b", "project": PROJECTS["a"], "zone": "europe-west1-b"},
             {"name": "c", "project": PROJECTS["a"], "zone": "europe-west1-c"},
             {"name": "d", "project": PROJECTS["b"]}]
    machines = GceCellMachines(GceSettings.from_env({
        **cells_env(fake), "GCE_CELLS": json.dumps(cells),
        "GCE_INSERT_RATE": "0.01", "GCE_INSERT_BURST": "2", "GCE_INSERT_MAX_WAIT": "0"}), coordination)
    try:
        [session] = homed_in(machines, "b")
        # b's two tokens are the project's: the next start finds c's spent too, and goes on to d's project
        assert [await machines.cells.cold_turn(session, tried=["d"]) for _ in range(2)] == ["b", "b"]
        with pytest.raises(MachinesError) as refused:
            await machines.cells.cold_turn(session, tried=["d"])
        assert refused.value.reason == "gce_rate_limited"
        assert await machines.cells.cold_turn(session) == "d"
    finally:
        await machines.aclose()
