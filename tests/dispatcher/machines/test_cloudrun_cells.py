"""Cloud Run executions spread over two GCP projects (CLOUDRUN_CELLS), against the fake Admin API
holding each project's own executions, quota, grants and bots' service account: each session runs
in its home project; a project answering 429 (its quota, or its request rate) is drained and the
run goes to the other; a run whose answer was lost stays in its project; a retry at another replica
meets its execution through the store; a bot's token is checked against its own project.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import time
from collections.abc import AsyncIterator

import pytest

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.base import MachinesError
from dispatcher.machines.cells import PartialListing
from dispatcher.machines.cloudrun.cell_reserve import CloudRunCellWarmMachines
from dispatcher.machines.cloudrun.cells import CloudRunCellMachines
from dispatcher.machines.cloudrun.settings import CloudRunSettings
from dispatcher.outbound.provider_errors import as_api_error
from dispatcher.settings import SettingsError
from dispatcher.store.local import LocalCoordination
from dispatcher.store.unavailable import StoreUnavailable
from tests.dispatcher.machines.test_cloudrun import bot_token
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.cloud_run_jobs import CHANNEL_AUDIENCE, FakeCloudRunJobs
from tests.fakes.server import Delay
from tests.support.cells import admin_status, check_cells_mode, homed_in

PROJECTS = {"a": "vf-cell-a", "b": "vf-cell-b"}
ACCOUNTS = {"a": "104000000000000000111", "b": "104000000000000000222"}  # each project's bots' service account
LONG_DRAIN = 30.0  # a drained project stays so 15-30 s: past anything a test does after it


def cells_env(fake: FakeCloudRunJobs) -> dict[str, str]:
    cells = [{"name": cell, "project": project, "bot_service_account_id": ACCOUNTS[cell]}
             for cell, project in PROJECTS.items()]
    return {**fake.env, "CLOUDRUN_RETRY_DEADLINE_SECONDS": "3", "CLOUDRUN_CELLS": json.dumps(cells)}


@pytest.fixture
def fake(fake_cloud_run_jobs: FakeCloudRunJobs) -> FakeCloudRunJobs:
    for cell, project in PROJECTS.items():
        fake_cloud_run_jobs.add_project(project, service_account_id=ACCOUNTS[cell])
    return fake_cloud_run_jobs


@pytest.fixture
def coordination() -> LocalCoordination:
    """The deployment's store, in this process: what every replica of a test shares."""
    return LocalCoordination()


def replica(fake: FakeCloudRunJobs, coordination: LocalCoordination, **env: str) -> CloudRunCellMachines:
    return CloudRunCellMachines(CloudRunSettings.from_env({**cells_env(fake), **env}), coordination,
                                drain_base=LONG_DRAIN)


@pytest.fixture
async def machines(fake: FakeCloudRunJobs, coordination: LocalCoordination) -> AsyncIterator[CloudRunCellMachines]:
    provider = replica(fake, coordination)
    yield provider
    await provider.aclose()


def runs_in(fake: FakeCloudRunJobs, cell: str) -> int:
    return len([c for c in fake.calls_to("POST", ":run") if f"/projects/{PROJECTS[cell]}/" in c.path])


def project_of_session(fake: FakeCloudRunJobs, session: str) -> list[str]:
    return [fake.project_of(e) for e in fake.of_session(session)]


def running(machines: CloudRunCellMachines) -> dict[str, int]:
    return {view.name: view.running for view in machines.views()}


async def test_each_session_runs_in_its_home_project_and_is_found_and_stopped_there(
        machines: CloudRunCellMachines, fake: FakeCloudRunJobs) -> None:
    for cell in ("a", "b"):
        [session] = homed_in(machines, cell)
        launched = await machines.launch(spec(session))
        assert launched.created and project_of_session(fake, session) == [PROJECTS[cell]]
        found = await machines.status(session)
        assert found is not None and found.machine_id == launched.machine.machine_id
        assert running(machines)[cell] == 1
        assert await machines.stop(session) is True
        assert running(machines)[cell] == 0
    assert (runs_in(fake, "a"), runs_in(fake, "b")) == (1, 1)
    assert fake.running(fake.project) == 0  # the deployment's own project runs nothing: it is not a cell


async def test_a_project_at_its_quota_is_drained_and_its_sessions_run_in_the_other(
        machines: CloudRunCellMachines, fake: FakeCloudRunJobs) -> None:
    fake.projects[PROJECTS["a"]].max_running = 0  # a's 1000 running executions, all taken
    first, second = homed_in(machines, "a", 2)
    launched = await machines.launch(spec(first))
    assert launched.created and project_of_session(fake, first) == [PROJECTS["b"]]
    assert runs_in(fake, "a") == 1  # the quota answered once: not retried, nothing made
    views = {view.name: view for view in machines.views()}
    assert views["a"].drained_until is not None and views["a"].reason == "the project's quota of running executions"
    assert views["a"].drained_until >= time.time() + 14  # never less than the quota's own hint
    await machines.launch(spec(second))  # meanwhile a is not asked again
    assert runs_in(fake, "a") == 1 and project_of_session(fake, second) == [PROJECTS["b"]]
    assert running(machines) == {"a": 0, "b": 2}


async def test_a_project_throttling_runs_is_drained_at_its_first_429(
        machines: CloudRunCellMachines, fake: FakeCloudRunJobs) -> None:
    fake.fail(429, method="POST", path_contains=f"/projects/{PROJECTS['b']}/", times=5)  # RATE_LIMIT_EXCEEDED
    [session] = homed_in(machines, "b")
    await machines.launch(spec(session))
    assert project_of_session(fake, session) == [PROJECTS["a"]] and runs_in(fake, "b") == 1
    assert {view.name: view.reason for view in machines.views()}["b"] == "RESOURCE_EXHAUSTED"


async def test_a_project_that_refuses_the_dispatcher_is_drained_and_its_starts_go_on(
        machines: CloudRunCellMachines, fake: FakeCloudRunJobs) -> None:
    fake.projects[PROJECTS["a"]].permissions = set()  # the dispatcher was never granted in a
    first, second = homed_in(machines, "a", 2)
    await machines.launch(spec(first))
    assert project_of_session(fake, first) == [PROJECTS["b"]]
    views = {view.name: view for view in machines.views()}
    assert views["a"].drained_until is not None and views["a"].reason == (
        "its grant was refused (the dispatcher's log says how)")
    asked = len(fake.calls_to("GET", f"/projects/{PROJECTS['a']}/"))
    await machines.launch(spec(second))  # meanwhile a is not asked again
    assert project_of_session(fake, second) == [PROJECTS["b"]]
    assert len(fake.calls_to("GET", f"/projects/{PROJECTS['a']}/")) == asked and runs_in(fake, "a") == 0


async def test_every_project_refusing_is_a_503_naming_the_cells(
        machines: CloudRunCellMachines, fake: FakeCloudRunJobs) -> None:
    for project in PROJECTS.values():
        fake.projects[project].max_running = 0
    [session] = homed_in(machines, "b")
    with pytest.raises(MachinesError) as refused:
        await machines.launch(spec(session))
    answer = as_api_error(refused.value)
    assert refused.value.reason == "cloudrun_cells_drained" and answer.status == 503
    assert answer.retry_after is not None and answer.retry_after >= 1
    assert re.fullmatch(r"every cloudrun cell is drained: a for \d+s \(the project's quota of running executions\); "
                        r"b for \d+s \(the project's quota of running executions\)", answer.message), answer.message
    assert fake.executions == {} and (runs_in(fake, "a"), runs_in(fake, "b")) == (1, 1)  # each asked once


async def test_a_run_whose_answer_was_lost_stays_in_its_project_and_is_adopted_there(
        fake: FakeCloudRunJobs, coordination: LocalCoordination) -> None:
    """The run is served (its execution made) after the dispatcher gave up waiting: never run in b."""
    machines = replica(fake, coordination, CLOUDRUN_TIMEOUT_SECONDS="0.5")
    try:
        machines.lost.look_pauses = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # the held run lands within them
        fake.knobs.delays.append(Delay(seconds=2.0, method="POST", path_contains=f"/projects/{PROJECTS['a']}/"))
        [session] = homed_in(machines, "a")
        launched = await machines.launch(spec(session))
        assert project_of_session(fake, session) == [PROJECTS["a"]] and runs_in(fake, "b") == 0
        assert launched.machine.machine_id == fake.of_session(session)[0]["name"].rsplit("/", 1)[-1]
        assert await coordination.key_holders.held("cloudrun-cell:" + session) == "a"
        assert all(view.drained_until is None for view in machines.views())  # a lost answer is no throttling
    finally:
        await machines.aclose()


async def test_a_run_answered_with_a_5xx_is_never_sent_to_another_project(
        machines: CloudRunCellMachines, fake: FakeCloudRunJobs, coordination: LocalCoordination) -> None:
    machines.lost.look_pauses, machines.lost.watch_pauses = (0.05,), ()
    fake.fail(503, method="POST", path_contains=f"/projects/{PROJECTS['a']}/")
    [session] = homed_in(machines, "a")
    with pytest.raises(MachinesError) as refused:
        await machines.launch(spec(session))
    assert refused.value.reason == "cloudrun_unavailable" and runs_in(fake, "b") == 0
    assert await coordination.key_holders.held("cloudrun-cell:" + session) == "a"  # looked for there, by anyone
    fake.projects[PROJECTS["a"]].max_running = 0  # a retry meets a full a: its refusal cannot send it to b
    with pytest.raises(MachinesError) as again:
        await machines.launch(spec(session))
    assert again.value.reason == "cloudrun_capacity" and runs_in(fake, "b") == 0


async def test_a_retry_at_another_replica_meets_the_execution_in_the_project_its_record_names(
        machines: CloudRunCellMachines, fake: FakeCloudRunJobs, coordination: LocalCoordination) -> None:
    fake.projects[PROJECTS["a"]].max_running = 0
    [session] = homed_in(machines, "a")
    first = await machines.launch(spec(session))  # a full: the execution runs in b
    assert project_of_session(fake, session) == [PROJECTS["b"]]
    fake.projects[PROJECTS["a"]].max_running = 1000  # a has room again; the other replica never saw it drained
    other = replica(fake, coordination)
    try:
        again = await other.launch(spec(session))
        assert not again.created and again.machine.machine_id == first.machine.machine_id
        assert len(fake.of_session(session)) == 1 and runs_in(fake, "a") == 1  # a's one refused run
        found = await other.status(session)
        assert found is not None and found.machine_id == first.machine.machine_id
    finally:
        await other.aclose()


async def test_a_bots_token_is_checked_against_the_project_its_execution_runs_in(
        machines: CloudRunCellMachines, fake: FakeCloudRunJobs) -> None:
    [session] = homed_in(machines, "b")
    s = dataclasses.replace(spec(session), channel_token="cred." + secrets.token_hex(8))
    name = (await machines.launch(s)).machine.machine_id
    fake.set_state(name, "started")
    grant = BotGrant("session", session, int(time.time()) + 60)
    own = await bot_token(fake, name)  # b's metadata server: b's bots' service account
    assert await machines.identity.refusal(grant, Hello(machine_id=name, identity=own)) is None
    nonce = fake.env_of(fake.execution(name))["VOICEFLEET_EXECUTION_NONCE"]
    # A's bots' account, with this execution's nonce and the channel's audience: a bot of another project.
    of_a = fake.identity_token(f"{CHANNEL_AUDIENCE}#{nonce}.x", subject=ACCOUNTS["a"])
    refused = await machines.identity.refusal(grant, Hello(machine_id=name, identity=of_a))
    assert refused == f"identity token is not the service account of the bots of projects/{PROJECTS['b']}/locations/" \
                      f"{fake.region}"
    stranger = fake.identity_token(f"{CHANNEL_AUDIENCE}#{nonce}.x", subject="104000000000000000999")
    assert "not the bots' service account" in str(
        await machines.identity.refusal(grant, Hello(machine_id=name, identity=stranger)))


async def test_a_project_that_cannot_be_read_is_unreadable_never_not_found(
        machines: CloudRunCellMachines, fake: FakeCloudRunJobs) -> None:
    sessions = {cell: homed_in(machines, cell)[0] for cell in ("a", "b")}
    for session in sessions.values():
        await machines.launch(spec(session))
    fake.projects[PROJECTS["a"]].permissions -= {"run.executions.list", "run.executions.get"}
    listed = await machines.list()
    assert isinstance(listed, PartialListing) and listed.missing == ("a",)
    assert [m.session_id for m in listed] == [sessions["b"]]
    views = {view.name: view for view in machines.views()}
    assert views["a"].unreadable == "its executions could not be listed (cloudrun_unauthorized)"
    assert views["b"].unreadable is None and views["a"].running == 1  # the last count read
    with pytest.raises(MachinesError) as unknown:
        await machines.status(sessions["a"])
    assert unknown.value.reason == "cloudrun_cell_unavailable" and as_api_error(unknown.value).status == 503


async def test_the_status_shows_each_project_cell(machines: CloudRunCellMachines, fake: FakeCloudRunJobs) -> None:
    fake.projects[PROJECTS["a"]].max_running = 0
    for session in homed_in(machines, "a", 2):
        await machines.launch(spec(session))
    body = await admin_status(machines)
    cells = {cell["name"]: cell for cell in body["cells"]}
    assert cells["a"]["drained_until"] > time.time() and cells["a"]["reason"] == (
        "the project's quota of running executions")
    assert (cells["b"]["running"], cells["b"]["drained_until"], cells["b"]["unreadable"]) == (2, None, None)


async def test_cloudrun_mode_with_cells_builds_the_cells_and_a_bad_list_is_named_by_the_config_check(
        fake: FakeCloudRunJobs) -> None:
    await check_cells_mode("cloudrun", "CLOUDRUN_CELLS", CloudRunCellMachines, cells_env(fake), CHANNEL_AUDIENCE,
                           warm_type=CloudRunCellWarmMachines)


@pytest.mark.parametrize(("cells", "said"), [
    ("not json", "CLOUDRUN_CELLS is not JSON"),
    ("[]", "non-empty JSON list"),
    ('[{"name": "a"}]', "project must be a GCP project id"),
    ('[{"name": "a", "project": "Vf_Cell"}]', "project must be a GCP project id"),
    ('[{"name": "A", "project": "vf-cell-a"}]', "name must be"),
    ('[{"name": "a", "project": "vf-cell-a", "role_arn": "x"}]', "unknown field 'role_arn'"),
    ('[{"name": "a", "project": "vf-cell-a"}, {"name": "a", "project": "vf-cell-b"}]', "names a cell twice: a"),
    ('[{"name": "a", "project": "vf-cell-a"}, {"name": "b", "project": "vf-cell-a"}]',
     "names a project and region twice: vf-cell-a europe-west1"),
    ('[{"name": "a", "project": "vf-cell-a", "max_executions": 0}]', "max_executions"),
    ('[{"name": "a", "project": "vf-cell-a", "region": "Europe"}]', "region must be a Cloud Run region"),
    ('[{"name": "a", "project": "vf-cell-a", "job": "projects/p/locations/r/jobs/j"}]', "job must be a job's name"),
    ('[{"name": "a", "project": "vf-cell-a", "bot_service_account_id": "bots@x.iam"}]', "unique id"),
    (json.dumps([{"name": f"c{i}", "project": f"vf-cell-{i:03d}"} for i in range(51)]), "at most 50"),
])
def test_a_wrong_cell_list_is_refused_with_the_way_forward(cells: str, said: str) -> None:
    env = {"CLOUDRUN_PROJECT": "vf-test", "CLOUDRUN_REGION": "europe-west1", "CLOUDRUN_JOB": "vf-bot",
           "CLOUDRUN_CELLS": cells}
    with pytest.raises(SettingsError, match=said):
        CloudRunSettings.from_env(env)


def test_a_cell_takes_the_deployments_job_region_and_account_unless_it_names_its_own() -> None:
    env = {"CLOUDRUN_PROJECT": "vf-test", "CLOUDRUN_REGION": "europe-west1", "CLOUDRUN_JOB": "vf-bot",
           "CLOUDRUN_BOT_SERVICE_ACCOUNT_ID": "1", "CLOUDRUN_CELLS": json.dumps([
               {"name": "a", "project": "vf-cell-a"},
               {"name": "b", "project": "vf-cell-b", "region": "us-central1", "job": "bot-b",
                "bot_service_account_id": "2", "max_executions": 900}])}
    settings = CloudRunSettings.from_env(env)
    a, b = (settings.for_cell(cell) for cell in settings.cells)
    assert (a.job_path, a.bot_service_account_id) == ("/projects/vf-cell-a/locations/europe-west1/jobs/vf-bot", "1")
    assert (b.job_path, b.bot_service_account_id) == ("/projects/vf-cell-b/locations/us-central1/jobs/bot-b", "2")
    assert settings.cells[1].max_executions == 900


def test_a_release_job_of_another_project_is_refused_for_a_cell() -> None:
    elsewhere = "projects/vf-other/locations/europe-west1/jobs/v2"  # neither the cell's project nor the deployment's
    releases = json.dumps({"releases": [{"name": "v2", "images": {"*": elsewhere}}]})
    env = {"CLOUDRUN_PROJECT": "vf-test", "CLOUDRUN_REGION": "europe-west1", "CLOUDRUN_JOB": "vf-bot",
           "RELEASES": releases, "CLOUDRUN_CELLS": '[{"name": "a", "project": "vf-cell-a"}]'}
    with pytest.raises(SettingsError, match="name a release's job by its name alone"):
        CloudRunSettings.from_env(env)
    for named in ("v2", "projects/vf-test/locations/europe-west1/jobs/v2"):  # as the stack names it: the same name
        listed = json.dumps({"releases": [{"name": "v2", "images": {"*": named}}]})
        settings = CloudRunSettings.from_env({**env, "RELEASES": listed})
        cell = settings.for_cell(settings.cells[0])
        assert cell.jobs[1] == cell.path_of(named) == "/projects/vf-cell-a/locations/europe-west1/jobs/v2"



def test_a_deployment_job_named_by_a_path_of_another_project_is_refused_with_cells() -> None:
    """CLOUDRUN_JOB as a path outside CLOUDRUN_PROJECT would be kept as is for every cell: every
    execution in one other project, its quota counted once per cell, every bot refused."""
    cells = [{"name": "a", "project": "vf-cell-a"}, {"name": "b", "project": "vf-cell-b", "region": "us-central1"}]
    env = {"CLOUDRUN_PROJECT": "vf-test", "CLOUDRUN_REGION": "europe-west1",
           "CLOUDRUN_JOB": "projects/vf-other/locations/europe-west1/jobs/vf-bot", "CLOUDRUN_CELLS": json.dumps(cells)}
    with pytest.raises(SettingsError, match="CLOUDRUN_JOB .* of another project or region"):
        CloudRunSettings.from_env(env)
    settings = CloudRunSettings.from_env({**env, "CLOUDRUN_JOB": "projects/vf-test/locations/europe-west1/jobs/vf-bot"})
    assert [settings.for_cell(cell).job_path for cell in settings.cells] == [
        "/projects/vf-cell-a/locations/europe-west1/jobs/vf-bot",
        "/projects/vf-cell-b/locations/us-central1/jobs/vf-bot"]


async def test_the_dispatchers_own_credentials_refused_drain_no_cell(
        machines: CloudRunCellMachines, fake: FakeCloudRunJobs) -> None:
    """The cells share one sign-in: a key Google refuses fails before any call, every cell alike. It
    is the dispatcher's to fix, not a cell's grant: no cell is drained, and once the key is fixed the
    next start runs at once."""
    fake.key_deleted = True  # Google answers the dispatcher's sign-in 400 invalid_grant
    first, second = homed_in(machines, "a", 2)
    with pytest.raises(MachinesError) as refused:
        await machines.launch(spec(first))
    assert refused.value.reason == "cloudrun_unauthorized" and "dispatcher's credentials" in refused.value.message
    fake.key_deleted = False
    assert all(view.drained_until is None for view in machines.views()), [
        (view.name, view.reason) for view in machines.views()]
    assert (await machines.launch(spec(second))).created


async def test_a_project_without_the_job_is_drained_and_its_sessions_run_in_the_other(
        machines: CloudRunCellMachines, fake: FakeCloudRunJobs, caplog: pytest.LogCaptureFixture) -> None:
    """A cell whose job was never made, was deleted or is misnamed answers the pre-run read 404 (the
    dispatcher granted on the project, as roles/run.developer would be): nothing was sent there, so
    the project is drained and the start goes on, as for a 403."""
    fake.projects[PROJECTS["a"]].job = "some-other-job"  # a's project holds no job of the deployment's name
    [session] = homed_in(machines, "a")
    launched = await machines.launch(spec(session))
    assert launched.created and project_of_session(fake, session) == [PROJECTS["b"]]
    views = {view.name: view for view in machines.views()}
    assert views["a"].drained_until is not None
    assert views["a"].reason == "its job is missing (the dispatcher's log names it)"
    drained = [r for r in caplog.records if r.getMessage().startswith("Cloud Run cell a drained:")]
    assert len(drained) == 1, drained  # logged once, though the run and the launch both ask why


async def test_a_bot_is_checked_against_the_cell_its_execution_was_found_in_whatever_its_name_says(
        machines: CloudRunCellMachines, fake: FakeCloudRunJobs) -> None:
    """Google documents `Execution.name` as output only, with no format, and may name the project by
    its number: the account a bot's token must be is that of the cell the execution was read in."""
    b = fake.projects[PROJECTS["b"]]
    b.number, b.names_by_number = "123456789012", True
    [session] = homed_in(machines, "b")
    s = dataclasses.replace(spec(session), channel_token="cred." + secrets.token_hex(8))
    name = (await machines.launch(s)).machine.machine_id
    assert fake.execution(name)["name"].startswith("projects/123456789012/")  # as Google may name it
    fake.set_state(name, "started")
    grant = BotGrant("session", session, int(time.time()) + 60)
    own = await bot_token(fake, name)  # b's metadata server: b's bots' own service account
    assert await machines.identity.refusal(grant, Hello(machine_id=name, identity=own)) is None
    nonce = fake.env_of(fake.execution(name))["VOICEFLEET_EXECUTION_NONCE"]
    of_a = fake.identity_token(f"{CHANNEL_AUDIENCE}#{nonce}.x", subject=ACCOUNTS["a"])  # a's bots: not b's
    assert "not the service account of the bots" in str(
        await machines.identity.refusal(grant, Hello(machine_id=name, identity=of_a)))


async def test_a_release_job_a_cell_lacks_names_the_cells_project_and_the_job_to_make_there(
        machines: CloudRunCellMachines, fake: FakeCloudRunJobs) -> None:
    """The stack makes a release's job in its own project only; a cell runs the job of that name in
    its own project. Where the cell lacks it, no `pulumi up` makes it: the answer names the cell's
    project and the job to make there (the stack's notes say how)."""
    path = fake.add_job("voicefleet-bot-r-0123456789", "europe-docker.pkg.dev/p/r/bot@sha256:" + "1" * 64)
    [session] = homed_in(machines, "a")
    s = dataclasses.replace(spec(session), image=path, release="r-0123456789")
    with pytest.raises(MachinesError) as refused:
        await machines.launch(s)
    assert refused.value.reason == "release_image_missing" and fake.executions == {}
    said = str(refused.value.public_message)
    assert "pulumi up" not in said, said
    assert f"make its job voicefleet-bot-r-0123456789 in the cell's project {PROJECTS['a']} ({fake.region})" in said


async def test_a_cell_record_whose_reply_was_lost_is_read_back_and_the_run_goes_on_in_its_cell(
        fake: FakeCloudRunJobs, coordination: LocalCoordination, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's cell record landed but its reply was lost: read back, it is this launch's own, so the
    run is made in its home project rather than the start refused 503 with a record left pinning replays."""
    holders = coordination.key_holders
    write = holders.first
    lost = [1]

    async def reply_lost_once(what: str, value: str, seconds: float) -> str:
        recorded = await write(what, value, seconds)
        if lost:
            lost.pop()
            raise StoreUnavailable("the store did not answer: TimeoutError (the reply lost after the write)")
        return recorded

    monkeypatch.setattr(holders, "first", reply_lost_once)
    machines = replica(fake, coordination)
    try:
        [session] = homed_in(machines, "a")
        await machines.launch(spec(session))
        assert project_of_session(fake, session) == [PROJECTS["a"]] and not lost
    finally:
        await machines.aclose()
