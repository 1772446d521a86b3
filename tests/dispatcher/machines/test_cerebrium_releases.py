"""Cerebrium calls each session's release: a release is an app of its own (an app serves its latest
deploy only), so the call goes to the release's app, its run's record keeps the release for every
replica, and an app Cerebrium does not know is the release's clear refusal."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dispatcher.machines.base import MachinesError
from tests.dispatcher.machines.harness import cerebrium_harness
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.cerebrium import APP, FakeCerebrium

CANARY_APP = "voicefleet-bot-r-9f2c1a7b3d"


async def test_a_session_of_a_release_calls_its_app_and_any_replica_reads_its_release(
        fake_cerebrium: FakeCerebrium) -> None:
    fake_cerebrium.apps.add(CANARY_APP)
    harness = cerebrium_harness(fake_cerebrium)
    machines, replica = harness.make(), harness.make()
    try:
        s, default = replace(spec(), release="canary", image=CANARY_APP), spec()
        launched = await machines.launch(s)
        await machines.launch(default)
        await harness.move(s.session_id, "started")
        found = await replica.wait_started(s.session_id, 5)
        listed = {m.session_id: m.release for m in await machines.list()}
    finally:
        await machines.aclose()
        await replica.aclose()
    assert [r.app for r in fake_cerebrium.of(s.session_id)] == [CANARY_APP]
    assert [r.app for r in fake_cerebrium.of(default.session_id)] == [APP]
    assert launched.machine.release == "canary" and found.release == "canary"
    assert listed == {s.session_id: "canary", default.session_id: "default"}


async def test_a_release_whose_app_cerebrium_lacks_is_refused_naming_the_release(
        fake_cerebrium: FakeCerebrium) -> None:
    machines = cerebrium_harness(fake_cerebrium).make()
    s = replace(spec(), release="r-gone", image="voicefleet-bot-r-gone")
    try:
        with pytest.raises(MachinesError) as refused:
            await machines.launch(s)
        failed = await machines.status(s.session_id)
    finally:
        await machines.aclose()
    assert refused.value.reason == "release_image_missing" and refused.value.retry_after is None
    assert "release 'r-gone'" in refused.value.message and "voicefleet-bot-r-gone" in refused.value.message
    assert failed is not None and failed.state.value == "failed" and failed.release == "r-gone"
    assert fake_cerebrium.runs == {}

