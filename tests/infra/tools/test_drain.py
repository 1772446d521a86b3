"""`python -m stacks.drain` removes what the dispatcher launched, so `pulumi destroy` meets none of it.

AWS against moto in server mode (its own cluster and bot family, so other tests' state is untouched),
GCP against the fake Compute API (tests/fakes/gce.py). The machines are launched by the dispatcher's
own providers, as the dispatcher would: a session's machine and an idle reserve bot each (GCP: plus
a VM that ended and powered off, which keeps its disk and the subnetwork).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from google.auth.exceptions import DefaultCredentialsError

from dispatcher.machines.base import LaunchSpec, MachinesError
from dispatcher.machines.cloudrun.provider import CloudRunMachines, CloudRunSettings
from dispatcher.machines.ecs.credentials import NoCredentials
from dispatcher.machines.ecs.provider import EcsSettings
from dispatcher.machines.ecs.reserve import EcsWarmMachines
from dispatcher.machines.gce.provider import GceSettings
from dispatcher.machines.gce.reserve import GceWarmMachines
from dispatcher.outbound.retry import Transient
from dispatcher.store.local import LocalCoordination
from stacks.shared import contract
from stacks.tools.drain import Drain, DrainError, main, provider_environment
from stacks.tools.mocks import Run
from tests.fakes.cloud_run import FakeCloudRun
from tests.fakes.cloud_run_jobs import FakeCloudRunJobs
from tests.fakes.ecs import provision
from tests.fakes.fixtures import fake_cloud_run, fake_cloud_run_jobs, fake_gce, moto_ecs  # noqa: F401 - fixtures
from tests.fakes.gce import FakeGce
from tests.infra.conftest import CHANNEL as STACK_CHANNEL
from tests.infra.conftest import CHANNEL_SECRETS, SECRETS
from tests.infra.helpers import component_outputs

SESSION = "0123456789abcdef01234567"
CHANNEL = "wss://dispatcher.example.com/bots/channel"


async def no_wait(_: float) -> None:
    return None


def spec(session_id: str = SESSION) -> LaunchSpec:
    return LaunchSpec(session_id=session_id, body_digest="d" * 16, max_session_seconds=60,
                      room_url="https://example.daily.co/r", bot_token="t")  # noqa: S106 - a test token


@pytest.fixture
def ecs_stack(moto_ecs: dict[str, str]) -> Iterator[dict[str, Any]]:  # noqa: F811
    """A stack of its own in the shared moto server: cluster, two bot revisions, a dispatcher service."""
    import boto3

    url = moto_ecs["MOTO_URL"]
    env = {**provision(url, cluster="vf-drain", family="vf-drain-bot"), "MACHINES": "ecs"}
    client = boto3.client("ecs", region_name=env["AWS_REGION"], endpoint_url=url)
    definition = client.describe_task_definition(taskDefinition="vf-drain-bot")["taskDefinition"]
    client.register_task_definition(**{k: definition[k] for k in ("family", "networkMode", "containerDefinitions",
                                                                  "requiresCompatibilities", "cpu", "memory")})
    client.create_service(cluster="vf-drain", serviceName="vf-drain-dispatcher", taskDefinition="vf-drain-bot",
                          desiredCount=0)
    yield {"outputs": {"machinesEnvironment": env, "drained": True, "dispatcherService": "vf-drain-dispatcher"},
           "client": client, "url": url}


def running(client: Any) -> list[str]:
    return list(client.list_tasks(cluster="vf-drain", desiredStatus="RUNNING")["taskArns"])


async def launch_on_ecs(env: dict[str, str]) -> None:
    machines = EcsWarmMachines(EcsSettings.from_env(env), coordination=LocalCoordination(), channel_url=CHANNEL)
    try:
        await machines.launch(spec())
        await machines.launch_idle("rsv-0123456789ab")
    finally:
        await machines.aclose()


def test_aws_drain_stops_sessions_and_reserve_and_deregisters_the_bot_revisions(ecs_stack: dict[str, Any]) -> None:
    client, outputs = ecs_stack["client"], ecs_stack["outputs"]
    env = provider_environment(outputs, {"AWS_ENDPOINT_URL": ecs_stack["url"]})
    asyncio.run(launch_on_ecs(env))
    assert len(running(client)) == 2  # what would hold the cluster, the subnets and the bot SG at destroy
    report = asyncio.run(Drain(outputs, env, grace=0, deadline=600, poll=0, sleep=no_wait).run())
    assert running(client) == []
    assert report.stopped_sessions == {SESSION} and report.retired_idle == {"rsv-0123456789ab"}
    assert len(report.deregistered) == 2  # both revisions (F15: skip_destroy keeps them past a destroy)
    assert client.list_task_definitions(familyPrefix="vf-drain-bot", status="ACTIVE")["taskDefinitionArns"] == []


def test_aws_drain_refuses_while_the_dispatcher_may_still_launch(ecs_stack: dict[str, Any]) -> None:
    client, outputs = ecs_stack["client"], ecs_stack["outputs"]
    with pytest.raises(DrainError, match="drain true"):
        provider_environment({**outputs, "drained": False}, {})
    client.update_service(cluster="vf-drain", service="vf-drain-dispatcher", desiredCount=1)
    env = provider_environment(outputs, {"AWS_ENDPOINT_URL": ecs_stack["url"]})
    with pytest.raises(DrainError, match="still wants 1 task"):
        asyncio.run(Drain(outputs, env, grace=0, deadline=600, poll=0, sleep=no_wait).run())


def scaled_to_zero(fake_cloud_run: FakeCloudRun) -> None:  # noqa: F811 - a fixture's value
    """The GCP dispatcher after `drain: true`: no instance left, long enough ago that no count reported means none."""
    fake_cloud_run.apply_scaling(scalingMode="MANUAL", manualInstanceCount=0)
    fake_cloud_run.settle()
    fake_cloud_run.advance(300)


def gcp_outputs(env: dict[str, str], fake_cloud_run: FakeCloudRun, **more: object) -> dict[str, Any]:  # noqa: F811
    """A drained GCP stack's outputs, its machinesEnvironment from `env` as the stack exports it."""
    return {"machinesEnvironment": {k: env[k] for k in contract.MACHINES_ENV if k in env}, "drained": True,
            "region": fake_cloud_run.region, "dispatcherService": fake_cloud_run.service, **more}


def drain_gcp(outputs: dict[str, Any], env: dict[str, str], fake_cloud_run: FakeCloudRun) -> Any:  # noqa: F811
    return asyncio.run(Drain(outputs, provider_environment(outputs, env), grace=0, deadline=600, poll=0,
                             sleep=no_wait, now=lambda: fake_cloud_run.now).run())


async def launch_on_gce(env: dict[str, str]) -> None:
    machines = GceWarmMachines(GceSettings.from_env(env),
        coordination=LocalCoordination(), max_idle_seconds=900, max_session_seconds=900)
    try:
        await machines.launch(spec())
        await machines.launch(spec("89abcdef0123456789abcdef"))
        await machines.launch_idle("rsv-0123456789ab")
    finally:
        await machines.aclose()


def test_gcp_drain_deletes_session_reserve_and_powered_off_vms(
    fake_gce: FakeGce, fake_cloud_run: FakeCloudRun  # noqa: F811
) -> None:
    scaled_to_zero(fake_cloud_run)
    env = {**fake_gce.env, **fake_cloud_run.env, "MACHINES": "gce", "GCE_INSTANCE_PREFIX": "vf-drain-"}
    asyncio.run(launch_on_gce(env))
    assert len(fake_gce.instances) == 3
    ended = next(name for name in fake_gce.instances if name.endswith("89abcdef"))
    fake_gce.set_status(ended, "TERMINATED")  # its bot powered off (no self-delete grant): disk and IP stay
    outputs = gcp_outputs(env, fake_cloud_run)
    report = drain_gcp(outputs, env, fake_cloud_run)
    assert fake_gce.instances == {}  # nothing left in the subnetwork: its delete can succeed
    assert report.retired_idle == {"rsv-0123456789ab"} and len(report.stopped_sessions) == 2


GCE_CELLS = json.dumps([{"name": c, "project": f"vf-cell-{c}"} for c in "abc"])


def gce_cells_stack(fake_gce: FakeGce, fake_cloud_run: FakeCloudRun) -> dict[str, str]:  # noqa: F811
    """gceCells over three projects, each running some of the sessions' VMs, launched as the dispatcher does."""
    from dispatcher.machines.gce.cells import GceCellMachines

    for cell in "abc":
        fake_gce.add_project(f"vf-cell-{cell}")
    scaled_to_zero(fake_cloud_run)
    env = {**fake_gce.env, **fake_cloud_run.env, "MACHINES": "gce", "GCE_CELLS": GCE_CELLS}

    def running() -> dict[str, int]:
        return {project: len(found.instances) for project, found in fake_gce.projects.items() if found.instances}

    async def launch() -> None:
        machines = GceCellMachines(GceSettings.from_env(env), LocalCoordination())
        try:
            while len(running()) < 3:
                await machines.launch(spec(f"{sum(running().values()):024x}"))
        finally:
            await machines.aclose()

    asyncio.run(launch())
    assert fake_gce.projects[fake_gce.project].instances == {}  # the stack's own project runs none with cells
    return env


def test_the_gce_drain_deletes_the_vms_in_every_project_of_its_cells(
    fake_gce: FakeGce, fake_cloud_run: FakeCloudRun  # noqa: F811
) -> None:
    """gceCells: sessions' VMs run in the cells' projects, not the stack's own; the drain reads GCE_CELLS from
    machinesEnvironment and deletes them in each project, as a destroy leaves them running and billing."""
    env = gce_cells_stack(fake_gce, fake_cloud_run)
    launched = sum(len(project.instances) for project in fake_gce.projects.values())
    report = drain_gcp(gcp_outputs(env, fake_cloud_run), env, fake_cloud_run)
    assert {p: found.instances for p, found in fake_gce.projects.items() if found.instances} == {}
    assert len(report.stopped_sessions) == launched


def test_a_gce_cell_the_drain_cannot_read_is_reported_and_the_later_cells_are_still_drained(
    fake_gce: FakeGce, fake_cloud_run: FakeCloudRun  # noqa: F811
) -> None:
    env = gce_cells_stack(fake_gce, fake_cloud_run)
    fake_gce.projects["vf-cell-a"].denied = True  # the first cell's grant is gone: every call there 403
    with pytest.raises(DrainError, match=r"1 of 4 Compute Engine projects not drained \(cell a \(vf-cell-a\): gce_"):
        drain_gcp(gcp_outputs(env, fake_cloud_run), env, fake_cloud_run)
    assert fake_gce.projects["vf-cell-b"].instances == fake_gce.projects["vf-cell-c"].instances == {}
    assert fake_gce.projects["vf-cell-a"].instances  # left, and named


def test_gcp_drain_cancels_the_running_executions_of_a_cloudrun_stack(
    fake_cloud_run_jobs: FakeCloudRunJobs, fake_cloud_run: FakeCloudRun  # noqa: F811
) -> None:
    scaled_to_zero(fake_cloud_run)
    env = {**fake_cloud_run_jobs.env, **fake_cloud_run.env, "MACHINES": "cloudrun"}

    async def launch() -> None:
        machines = CloudRunMachines(CloudRunSettings.from_env(env), coordination=LocalCoordination())
        try:
            await machines.launch(spec())
            await machines.launch(spec("89abcdef0123456789abcdef"))
        finally:
            await machines.aclose()

    asyncio.run(launch())
    assert fake_cloud_run_jobs.running() == 2
    jobs = fake_cloud_run_jobs
    job = f"projects/{jobs.project}/locations/{jobs.region}/jobs/{jobs.job}"  # the stack's botJobs: its one job
    outputs = gcp_outputs(env, fake_cloud_run, **{contract.BOT_JOBS_OUTPUT: [job]})
    report = drain_gcp(outputs, env, fake_cloud_run)
    assert fake_cloud_run_jobs.running() == 0 and len(report.stopped_sessions) == 2


def test_the_cloudrun_drain_cancels_the_executions_in_every_project_of_its_cells(
    fake_cloud_run_jobs: FakeCloudRunJobs, fake_cloud_run: FakeCloudRun  # noqa: F811
) -> None:
    """cloudRunCells: sessions run in the cells' projects, not the stack's own; the drain reads
    CLOUDRUN_CELLS from machinesEnvironment and cancels them in each project."""
    from dispatcher.machines.cloudrun.cells import CloudRunCellMachines

    fake = fake_cloud_run_jobs
    for project in ("vf-cell-a", "vf-cell-b"):
        fake.add_project(project)
    scaled_to_zero(fake_cloud_run)
    cells = json.dumps([{"name": "a", "project": "vf-cell-a"}, {"name": "b", "project": "vf-cell-b"}])
    env = {**fake.env, **fake_cloud_run.env, "MACHINES": "cloudrun", "CLOUDRUN_CELLS": cells}

    async def launch() -> None:
        machines = CloudRunCellMachines(CloudRunSettings.from_env(env), LocalCoordination())
        try:
            while {fake.project_of(e) for e in fake.executions.values()} != {"vf-cell-a", "vf-cell-b"}:
                await machines.launch(spec(f"{len(fake.executions):024x}"))
        finally:
            await machines.aclose()

    asyncio.run(launch())
    assert fake.running(fake.project) == 0 and fake.running() >= 2
    job = f"projects/{fake.project}/locations/{fake.region}/jobs/{fake.job}"  # as the stack names its one job
    outputs = gcp_outputs(env, fake_cloud_run, **{contract.BOT_JOBS_OUTPUT: [job]})
    launched = fake.running()
    report = drain_gcp(outputs, env, fake_cloud_run)
    assert fake.running() == 0 and len(report.stopped_sessions) == launched


def test_the_cloudrun_drain_cancels_the_executions_of_every_releases_job_a_retiring_ones_too(
    fake_cloud_run_jobs: FakeCloudRunJobs, fake_cloud_run: FakeCloudRun  # noqa: F811
) -> None:
    """A session runs in its release's job: the current one's, a listed older release's, or one the
    last `up` dropped from RELEASES whose session is still running (its job stays until it must have
    ended). The stack names the listed ones in machinesEnvironment (RELEASES) and every kept one in
    `botJobs`; the drain cancels them all, not only CLOUDRUN_JOB's."""
    fake = fake_cloud_run_jobs
    scaled_to_zero(fake_cloud_run)
    image = "europe-docker.pkg.dev/p/r/bot@sha256:" + "9" * 64
    listed, retiring = fake.add_job("vf-bot-r-listed", image), fake.add_job("vf-bot-r-retiring", image)
    current = f"projects/{fake.project}/locations/{fake.region}/jobs/{fake.job}"
    catalogue = {"releases": [{"name": "r-listed", "images": {"*": listed}},
                              {"name": "r-current", "images": {"*": current}}]}
    env = {**fake.env, **fake_cloud_run.env, "MACHINES": "cloudrun", "RELEASES": json.dumps(catalogue)}
    earlier = {**env, "RELEASES": json.dumps({"releases": [{"name": "r-retiring", "images": {"*": retiring}}]})}

    async def launch(environment: dict[str, str], release: str, job: str, session: str) -> None:
        machines = CloudRunMachines(CloudRunSettings.from_env(environment), coordination=LocalCoordination())
        try:
            await machines.launch(replace(spec(session), release=release, image=job))
        finally:
            await machines.aclose()

    asyncio.run(launch(env, "r-current", current, SESSION))
    asyncio.run(launch(env, "r-listed", listed, "89abcdef0123456789abcdef"))
    asyncio.run(launch(earlier, "r-retiring", retiring, "fedcba9876543210fedcba98"))  # the last `up`'s dispatcher
    assert fake.running() == 3 and {e["job"] for e in fake.executions.values()} == {
        fake.job, "vf-bot-r-listed", "vf-bot-r-retiring"}
    outputs = gcp_outputs(env, fake_cloud_run, **{contract.BOT_JOBS_OUTPUT: [current, listed, retiring]})
    report = drain_gcp(outputs, env, fake_cloud_run)
    assert fake.running() == 0 and len(report.stopped_sessions) == 3
    # A stack last deployed by a program that did not export botJobs: refused, not drained in part.
    earlier_outputs = {k: v for k, v in outputs.items() if k != contract.BOT_JOBS_OUTPUT}
    with pytest.raises(DrainError, match="pulumi up"):
        asyncio.run(Drain(earlier_outputs, provider_environment(earlier_outputs, env), grace=0, deadline=600, poll=0,
                          sleep=no_wait, now=lambda: fake_cloud_run.now).run())


def test_the_stacks_export_what_the_drain_reads_and_drain_stops_every_dispatcher(stack: Any) -> None:
    for cloud, dispatcher in (("aws", "aws:ecs/service:Service"), ("gcp", "gcp:cloudrunv2/service:Service")):
        normal: Run = stack(cloud)
        outputs = component_outputs(normal, cloud)
        assert outputs["drained"] is False
        assert outputs["machinesEnvironment"]["MACHINES"] == {"aws": "ecs", "gcp": "gce"}[cloud]
        drained: Run = stack(cloud, drain="true")
        service = drained.one(dispatcher).inputs
        if cloud == "aws":
            assert normal.one(dispatcher).inputs["desiredCount"] == 1 and service["desiredCount"] == 0
        else:
            assert normal.one(dispatcher).inputs["scaling"] == {"scalingMode": "AUTOMATIC"}
            assert service["scaling"] == {"scalingMode": "MANUAL", "manualInstanceCount": 0}


def test_a_cell_the_drain_cannot_read_is_reported_and_the_later_cells_are_still_drained(
    fake_cloud_run_jobs: FakeCloudRunJobs, fake_cloud_run: FakeCloudRun  # noqa: F811
) -> None:
    from dispatcher.machines.cloudrun.cells import CloudRunCellMachines

    fake = fake_cloud_run_jobs
    for project in ("vf-cell-a", "vf-cell-b", "vf-cell-c"):
        fake.add_project(project)
    scaled_to_zero(fake_cloud_run)
    cells = json.dumps([{"name": c, "project": f"vf-cell-{c}"} for c in "abc"])
    env = {**fake.env, **fake_cloud_run.env, "MACHINES": "cloudrun", "CLOUDRUN_CELLS": cells}

    async def launch() -> None:
        machines = CloudRunCellMachines(CloudRunSettings.from_env(env), LocalCoordination())
        try:
            while len({fake.project_of(e) for e in fake.executions.values()}) < 3:
                await machines.launch(spec(f"{len(fake.executions):024x}"))
        finally:
            await machines.aclose()

    asyncio.run(launch())
    fake.projects["vf-cell-a"].permissions = set()  # the first cell refuses the drain's reads
    job = f"projects/{fake.project}/locations/{fake.region}/jobs/{fake.job}"
    outputs = gcp_outputs(env, fake_cloud_run, **{contract.BOT_JOBS_OUTPUT: [job]})
    with pytest.raises(DrainError, match=r"1 of 4 Cloud Run projects not drained \(cell a \(vf-cell-a\): "
                                         "cloudrun_unauthorized"):
        drain_gcp(outputs, env, fake_cloud_run)
    assert fake.running("vf-cell-b") == fake.running("vf-cell-c") == 0 and fake.running("vf-cell-a") > 0


def test_the_command_line_says_why_it_did_not_drain(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text('{"machinesEnvironment": {"MACHINES": "gce"}, "drained": false}')
    assert main(["gcp-dev", "--outputs", str(outputs)]) == 1
    assert "pulumi config set drain true" in capsys.readouterr().err


@pytest.mark.parametrize("error", [
    MachinesError("gce_unauthorized", "gce refused to list instances: HTTP 403"),
    NoCredentials("no AWS credentials found (environment, config files, task role, instance role)"),
    Transient("AWS credentials: ConnectTimeout: the instance metadata service did not answer"),
    DefaultCredentialsError("Your default credentials were not found."),
])
def test_a_refusing_cloud_or_missing_credentials_is_one_line_not_a_traceback(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    async def refused(self: Drain) -> None:
        raise error

    monkeypatch.setattr(Drain, "run", refused)
    outputs = tmp_path / "outputs.json"
    outputs.write_text('{"machinesEnvironment": {"MACHINES": "gce", "GCE_PROJECT": "p", "GCE_ZONE": "z", '
                       '"GCE_INSTANCE_TEMPLATE": "t", "GCE_API_URL": "http://127.0.0.1:9"}, "drained": true}')
    assert main(["gcp-dev", "--outputs", str(outputs)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gcp-dev: not drained: ") and str(error) in err and err.count("\n") == 1


def test_the_preflight_refuses_a_stack_a_destroy_could_not_drain(stack: Any) -> None:
    """F3/F4 in the preflight: machines the dispatcher launches need the drain's outputs."""
    from stacks.tools.preflight import destroy

    cloudrun = {"botRuntime": "cloudrun", "secrets": {**SECRETS, **CHANNEL_SECRETS}, **STACK_CHANNEL["gcp"]}
    for cloud, overrides in (("aws", {}), ("gcp", {}), ("gcp", cloudrun)):
        run: Run = stack(cloud, **overrides)
        outputs = component_outputs(run, cloud)
        assert destroy.violations(run.registrations, outputs) == []
        before = {k: v for k, v in outputs.items() if k not in ("machinesEnvironment", "drained")}  # as it was
        assert destroy.violations(run.registrations, before)
        emptied = {"GCE_ZONE": "", "ECS_CLUSTER": "", "CLOUDRUN_JOB": ""}
        broken = {**outputs, "machinesEnvironment": {**outputs["machinesEnvironment"], **emptied}}
        assert "refused" in destroy.violations(run.registrations, broken)[0]


def test_the_drains_default_deadline_outlasts_the_stacks_deregistration_delay(
    stack: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N6: on aws-prod a replaced task drains 1860 s; the old default of 900 s gave up first."""
    outputs = component_outputs(stack("aws", maxSessionSeconds="1800"), "aws")
    assert outputs["deregistrationDelaySeconds"] == 1860
    seen: list[float] = []

    async def record(self: Drain) -> None:
        seen.append(self.deadline)
        raise DrainError("stopped here")

    monkeypatch.setattr(Drain, "run", record)
    path = tmp_path / "outputs.json"
    env = {"MACHINES": "ecs", "AWS_REGION": "eu-west-1", "ECS_CLUSTER": "c", "ECS_TASK_DEFINITION": "f",
           "ECS_SUBNETS": "s", "ECS_SECURITY_GROUPS": "g"}
    for given, argv in (({"deregistrationDelaySeconds": 1860}, []), ({}, []),
                        ({"deregistrationDelaySeconds": 1860}, ["--deadline", "60"])):
        path.write_text(__import__("json").dumps({"machinesEnvironment": env, "drained": True, **given}))
        assert main(["aws-prod", "--outputs", str(path), *argv]) == 1
    assert seen[0] >= 1860 + 120 and seen[1] == 900 and seen[2] == 60


def cloud_run_scaling_after(state: dict[str, Any] | None, config: dict[str, Any] | None) -> dict[str, Any] | None:
    """terraform-provider-google resource_cloud_run_v2_service.go: the service-level `scaling` block
    is Optional + Computed with EmptyOrUnsetBlockDiffSuppress, so a block missing from the config is
    no change (the state keeps it, and an update re-sends it from state); a block given replaces it."""
    return state if not config else config


def test_undraining_gcp_brings_cloud_run_back_to_automatic_scaling(stack: Any) -> None:
    """N7: drained (MANUAL/0), then `drain: false`: the next up must leave manual scaling."""
    drained = stack("gcp", drain="true").one("gcp:cloudrunv2/service:Service").inputs.get("scaling")
    undrained: Run = stack("gcp")
    service = undrained.one("gcp:cloudrunv2/service:Service").inputs
    after = cloud_run_scaling_after(drained, service.get("scaling"))
    assert after == {"scalingMode": "AUTOMATIC"}
    assert service["template"]["scaling"]["minInstanceCount"] == 0  # the template's counts, as before
