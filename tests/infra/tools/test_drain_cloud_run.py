"""N12: the GCP drain sweeps only once Cloud Run's last dispatcher instance is gone, seen the way
the Admin API v2 and Cloud Monitoring show it (tests/fakes/cloud_run.py: 60 s samples, visible
180 s later); a dispatcher instance still ending could otherwise launch a VM after the sweep."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from dispatcher.machines.gce.provider import GceSettings
from dispatcher.machines.gce.reserve import GceWarmMachines
from dispatcher.store.local import LocalCoordination
from stacks.shared import contract
from stacks.tools.drain import Drain, DrainError, main, provider_environment
from tests.fakes.cloud_run import FakeCloudRun
from tests.fakes.fixtures import fake_cloud_run, fake_gce  # noqa: F401 - fixtures
from tests.fakes.gce import FakeGce


def gcp_stack(gce: FakeGce, cloud_run: FakeCloudRun) -> tuple[dict[str, Any], dict[str, str]]:
    env = {**gce.env, "MACHINES": "gce", "GCE_INSTANCE_PREFIX": "vf-drain-"}
    outputs = {"machinesEnvironment": {k: env[k] for k in contract.MACHINES_ENV if k in env}, "drained": True,
               "region": cloud_run.region, "dispatcherService": cloud_run.service}
    return outputs, provider_environment(outputs, {**env, **cloud_run.env})


class Lingering:
    """Cloud Run's clock as the drain's, and a dispatcher instance that is still alive: while it
    lives it keeps its reserve, launching a VM when one is missing (as the real one would)."""

    def __init__(self, cloud_run: FakeCloudRun, env: dict[str, str]) -> None:
        self.cloud_run, self.env = cloud_run, env
        self.started = cloud_run.now
        self.launched: list[str] = []

    def clock(self) -> float:
        return (self.cloud_run.now - self.started).total_seconds()

    async def sleep(self, seconds: float) -> None:
        self.cloud_run.advance(max(seconds, 1.0))
        if self.cloud_run.live():
            machines = GceWarmMachines(GceSettings.from_env(self.env),
                coordination=LocalCoordination(), max_idle_seconds=900, max_session_seconds=900)
            try:
                if not await machines.idle_machines():
                    bot_id = f"rsv-{len(self.launched):012d}"
                    await machines.launch_idle(bot_id)
                    self.launched.append(bot_id)
            finally:
                await machines.aclose()


def drain(outputs: dict[str, Any], env: dict[str, str], lingering: Lingering, deadline: float = 1800) -> Drain:
    return Drain(outputs, env, grace=0, deadline=deadline, poll=5, clock=lingering.clock, sleep=lingering.sleep,
                 now=lambda: lingering.cloud_run.now)


def scale_to_zero(cloud_run: FakeCloudRun, *, instances: int, last_ends_after: float) -> None:
    cloud_run.start_instances(instances)
    cloud_run.advance(120)  # sampled while serving
    cloud_run.apply_scaling(scalingMode="MANUAL", manualInstanceCount=0)  # the `drain: true` up
    for index in range(instances):
        cloud_run.stop_one_at(last_ends_after * (index + 1) / instances)


@pytest.mark.parametrize("zero_samples", [True, False])
def test_the_gcp_drain_sweeps_only_after_cloud_runs_last_instance_is_gone(
    fake_gce: FakeGce, fake_cloud_run: FakeCloudRun, zero_samples: bool  # noqa: F811
) -> None:
    fake_cloud_run.zero_samples = zero_samples  # either reading of an empty revision
    outputs, env = gcp_stack(fake_gce, fake_cloud_run)
    scale_to_zero(fake_cloud_run, instances=2, last_ends_after=400)
    lingering = Lingering(fake_cloud_run, env)
    fake_cloud_run.settle()
    asyncio.run(drain(outputs, env, lingering).run())
    assert fake_cloud_run.live() == 0  # the drain did not finish while a dispatcher could launch
    assert lingering.launched and fake_gce.instances == {}  # what it launched meanwhile was swept
    # And no longer than the metric needs: the last instance's end, a sample, its 180 s delay.
    assert lingering.clock() <= 400 + 60 + 180 + 10


def test_the_gcp_drain_waits_for_the_scaling_rollout(fake_gce: FakeGce, fake_cloud_run: FakeCloudRun) -> None:  # noqa: F811
    outputs, env = gcp_stack(fake_gce, fake_cloud_run)
    scale_to_zero(fake_cloud_run, instances=1, last_ends_after=0)
    lingering = Lingering(fake_cloud_run, env)
    with pytest.raises(DrainError, match="still rolling out its scaling to zero"):
        asyncio.run(drain(outputs, env, lingering, deadline=100).run())


def test_the_gcp_drain_gives_up_at_its_deadline_saying_what_runs(
    fake_gce: FakeGce, fake_cloud_run: FakeCloudRun  # noqa: F811
) -> None:
    outputs, env = gcp_stack(fake_gce, fake_cloud_run)
    scale_to_zero(fake_cloud_run, instances=1, last_ends_after=10**6)  # never ends within the deadline
    fake_cloud_run.settle()
    lingering = Lingering(fake_cloud_run, env)
    with pytest.raises(DrainError, match=r"not drained after 900 s: the Cloud Run service .* still has 1 instance"):
        asyncio.run(drain(outputs, env, lingering, deadline=900).run())


def test_a_cloud_run_service_not_scaled_to_zero_is_refused_in_one_line(
    fake_gce: FakeGce, fake_cloud_run: FakeCloudRun, tmp_path: Any, capsys: pytest.CaptureFixture[str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stack says drained, Cloud Run says AUTOMATIC (the up did not apply, or someone scaled it)."""
    outputs, env = gcp_stack(fake_gce, fake_cloud_run)
    for key, value in {**env, **fake_cloud_run.env}.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "outputs.json"
    path.write_text(__import__("json").dumps(outputs))
    assert main(["gcp-dev", "--outputs", str(path), "--poll", "0"]) == 1
    err = capsys.readouterr().err
    assert "is not scaled to zero" in err and "pulumi config set drain true" in err and err.count("\n") == 1


def test_a_refused_instance_count_read_is_one_line(
    fake_gce: FakeGce, fake_cloud_run: FakeCloudRun, tmp_path: Any, capsys: pytest.CaptureFixture[str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outputs, env = gcp_stack(fake_gce, fake_cloud_run)
    fake_cloud_run.apply_scaling(scalingMode="MANUAL", manualInstanceCount=0)
    fake_cloud_run.settle()
    fake_cloud_run.fail(403, path_contains="/timeSeries", body={"error": {
        "code": 403, "message": "Permission monitoring.timeSeries.list denied", "status": "PERMISSION_DENIED"}})
    for key, value in {**env, **fake_cloud_run.env}.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "outputs.json"
    path.write_text(__import__("json").dumps(outputs))
    assert main(["gcp-dev", "--outputs", str(path), "--poll", "0"]) == 1
    err = capsys.readouterr().err
    assert "cloud_run_unauthorized" in err and "monitoring.timeSeries.list" in err and err.count("\n") == 1


def test_silence_since_the_change_means_gone_only_after_a_sample_and_its_delay() -> None:
    from stacks.tools.drain_cloud_run import instances_reading

    since = datetime(2026, 11, 23, 12, 0).astimezone()
    service = {"name": "projects/p/locations/r/services/s", "updateTime": since.isoformat(),
               "scaling": {"scalingMode": "MANUAL"}}
    assert not instances_reading(service, [], since + timedelta(seconds=200)).gone
    assert instances_reading(service, [], since + timedelta(seconds=240)).gone


def two_revisions(cloud_run: FakeCloudRun, *, live_ends_after: float) -> str:
    """An old revision with no instance that keeps writing 0, sampled on the tick, and a newer one
    with one live instance sampled 50 s later; scaled to zero 15 s after the old one's last sample
    before the change."""
    old = cloud_run.revision
    cloud_run.instances[old] = 0
    cloud_run.revision = f"{cloud_run.service}-00002-def"
    cloud_run.phase[cloud_run.revision] = 50
    cloud_run.start_instances(1)
    cloud_run.advance(115)  # old: 0, 60 s; new: 50, 110 s (1 instance)
    cloud_run.apply_scaling(scalingMode="MANUAL", manualInstanceCount=0)
    cloud_run.settle()
    cloud_run.stop_one_at(live_ends_after)
    return old


def test_another_series_fresh_zero_does_not_hide_an_instance_whose_sample_is_still_delayed(
    fake_cloud_run: FakeCloudRun,  # noqa: F811
) -> None:
    from stacks.tools.drain_cloud_run import CloudRunInstances, CloudRunTarget

    two_revisions(fake_cloud_run, live_ends_after=10**6)
    # 195 s after the change: the old revision's 0 taken at 120 s is visible, the new revision's
    # sample taken after the change (170 s) is not yet; its last visible one said 1.
    fake_cloud_run.advance(195)
    target = CloudRunTarget.from_outputs({"region": fake_cloud_run.region,
                                          "dispatcherService": fake_cloud_run.service},
                                         {"GCE_PROJECT": fake_cloud_run.project, "GCE_AUTH": "none",
                                          **fake_cloud_run.env})

    async def look() -> tuple[bool, bool]:
        instances = CloudRunInstances(target)
        try:
            early = (await instances.reading(fake_cloud_run.now)).gone
            fake_cloud_run.advance(40)  # the new revision's 1, taken after the change, shows
            later = (await instances.reading(fake_cloud_run.now)).gone
            return early, later
        finally:
            await instances.aclose()

    assert fake_cloud_run.live() == 1
    assert asyncio.run(look()) == (False, False)

