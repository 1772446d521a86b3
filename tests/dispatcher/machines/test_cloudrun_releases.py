"""Cloud Run runs each session's execution from its release's job, records the release in the
run's env, and reads it back from any replica (which lists the releases' jobs too); a release
whose job Cloud Run does not have, or will not let the dispatcher run, is a clear error naming
the release (the fake answers 404 NOT_FOUND, or 403 with job-scoped grants, as the API does)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from dispatcher.machines.base import LaunchSpec, MachineState
from dispatcher.machines.cloudrun.provider import CloudRunMachines, CloudRunSettings
from dispatcher.machines.cloudrun.reserve import CloudRunWarmMachines
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.release_refusals import refused_naming
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.cloud_run_jobs import FakeCloudRunJobs

RELEASE_IMAGE = "europe-docker.pkg.dev/p/r/bot@sha256:" + "9" * 64


def releases_env(fake: FakeCloudRunJobs, **jobs: str) -> dict[str, str]:
    """The provider's environment with the stack's RELEASES naming `jobs` (release → job path)."""
    listed = [{"name": name, "images": {"*": job}} for name, job in jobs.items()]
    return {**fake.env, "RELEASES": json.dumps({"releases": listed})}


def provider(fake: FakeCloudRunJobs, **jobs: str) -> CloudRunMachines:
    return CloudRunMachines(CloudRunSettings.from_env(releases_env(fake, **jobs)), coordination=LocalCoordination())


def of_release(release: str, job: str) -> LaunchSpec:
    return replace(spec(), release=release, image=job)


async def test_a_session_of_a_release_runs_its_job_and_any_replica_reads_its_release(
        fake_cloud_run_jobs: FakeCloudRunJobs) -> None:
    fake = fake_cloud_run_jobs
    job = fake.add_job("vf-bot-r-9f2c", RELEASE_IMAGE)
    here, there = provider(fake, **{"r-9f2c": job}), provider(fake, **{"r-9f2c": job})
    s = of_release("r-9f2c", job)
    try:
        launched = await here.launch(s)
        assert launched.machine.release == "r-9f2c"
        [execution] = fake.of_session(s.session_id)
        assert execution["job"] == "vf-bot-r-9f2c"
        assert execution["template"]["containers"][0]["image"] == RELEASE_IMAGE  # the release's image runs
        fake.set_state(launched.machine.machine_id, "started")
        seen = await there.status(s.session_id)  # no cache there: found among the release job's executions
        assert seen is not None and seen.release == "r-9f2c" and seen.state is MachineState.STARTED
        assert {m.session_id: m.release for m in await there.list()}[s.session_id] == "r-9f2c"
        assert await there.stop(s.session_id)
        assert execution.get("cancelledCount") == 1  # cancelled under its own job
        default = await here.launch(spec())  # the default release: the deployment's own job, as before
        assert default.machine.release == "default"
        assert fake.of_session(default.machine.session_id)[0]["job"] == fake.job
    finally:
        await here.aclose()
        await there.aclose()


@pytest.mark.parametrize("grants", ["on the project", "on the deployment's jobs only"])
async def test_a_release_whose_job_cloud_run_does_not_have_is_refused_naming_the_release(
        fake_cloud_run_jobs: FakeCloudRunJobs, grants: str) -> None:
    fake = fake_cloud_run_jobs
    gone = f"projects/{fake.project}/locations/{fake.region}/jobs/vf-bot-r-gone"
    if grants != "on the project":
        fake.granted_jobs = {fake.job}  # a missing job is then 403 "(or it may not exist)"
    machines = provider(fake, **{"r-gone": gone})
    s = of_release("r-gone", gone)
    try:
        await refused_naming("r-gone", machines.launch(s))
        assert fake.executions == {}
        # The job listed in RELEASES that cannot be read does not stop the deployment's other sessions.
        other = await machines.launch(spec())
        assert (await machines.status(other.machine.session_id)) is not None
        assert [m.session_id for m in await machines.list()] == [other.machine.session_id]
    finally:
        await machines.aclose()


async def test_an_idle_bot_of_a_release_runs_its_job_and_its_session_keeps_the_release(
        fake_cloud_run_jobs: FakeCloudRunJobs) -> None:
    fake = fake_cloud_run_jobs
    job = fake.add_job("vf-bot-r-9f2c", RELEASE_IMAGE)
    machines = CloudRunWarmMachines(CloudRunSettings.from_env(releases_env(fake, **{"r-9f2c": job})),
                                    coordination=LocalCoordination(), channel_secret="c" * 40,
                                    max_idle_seconds=900.0, max_session_seconds=1800)
    try:
        await machines.launch_idle("rsv-r1", channel_token="cred.rsv-r1", image=job, release="r-9f2c")
        [(name, execution)] = [(n, e) for n, e in fake.executions.items()
                               if fake.env_of(e).get("VOICEFLEET_IDLE_BOT") == "rsv-r1"]
        assert execution["job"] == "vf-bot-r-9f2c"
        assert fake.env_of(execution)["BOT_IMAGE_DIGEST"] == machines.reported_image(job) == job
        assert machines.reported_image(None) == machines.bot_image
        fake.set_state(name, "started")
        claimed = await machines.adopt("rsv-r1", spec())
        assert claimed.machine.release == "r-9f2c"
        assert (await machines.status(claimed.machine.session_id)).release == "r-9f2c"  # type: ignore[union-attr]
        await refused_naming("r-gone", machines.launch_idle("rsv-r2", image="vf-bot-r-gone", release="r-gone"))
    finally:
        await machines.aclose()
