"""The fake Fly API's suspend and resume follow Fly's documented contract, never more leniently:
only a started machine that meets the requirements suspends, a resume is a `start`, `/wait` knows
`suspended`, and per-machine actions are rate-limited (https://fly.io/docs/reference/suspend-resume/,
https://fly.io/docs/machines/api/working-with-machines-api/#rate-limits)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.fakes.fly import API_TOKEN, APP, BOT_IMAGE, FakeFly
from tests.support.http_client import api_client


@pytest.fixture
async def api(fake_fly: FakeFly):  # type: ignore[no-untyped-def]
    async with api_client(base_url=f"{fake_fly.url}/v1/apps/{APP}/machines",
                                 headers={"Authorization": f"Bearer {API_TOKEN}"}) as client:
        yield client


async def create(api: httpx.AsyncClient, fake: FakeFly, **config: Any) -> str:
    body = {"config": {"image": BOT_IMAGE, "guest": {"memory_mb": 1024}, **config}}
    machine_id = str((await api.post(f"{fake.url}/v1/apps/{APP}/machines", json=body)).json()["id"])
    fake.machines[machine_id]["state"] = "started"
    return machine_id


async def test_a_started_machine_suspends_and_resumes_with_start(api, fake_fly) -> None:
    paused, resumed = [], []
    fake_fly.on_suspend = lambda m: paused.append(m["id"])
    fake_fly.on_resume = lambda m: resumed.append(m["id"])
    machine_id = await create(api, fake_fly)
    assert (await api.post(f"/{machine_id}/suspend")).status_code == 200
    assert (await api.get(f"/{machine_id}/wait", params={"state": "suspended", "timeout": "5"})).status_code == 200
    assert fake_fly.machines[machine_id]["state"] == "suspended" and paused == [machine_id]
    started = await api.post(f"/{machine_id}/start")
    assert started.status_code == 200 and started.json()["previous_state"] == "suspended"
    assert (await api.get(f"/{machine_id}/wait", params={"state": "started", "timeout": "5"})).status_code == 200
    assert resumed == [machine_id]


async def test_suspending_takes_its_time_and_wait_sees_it_through(api, fake_fly) -> None:
    fake_fly.suspend_seconds = 0.3
    machine_id = await create(api, fake_fly)
    await api.post(f"/{machine_id}/suspend")
    assert (await api.get(f"/{machine_id}")).json()["state"] == "suspending"
    assert (await api.get(f"/{machine_id}/wait", params={"state": "suspended", "timeout": "5"})).status_code == 200


@pytest.mark.parametrize("config", [
    {"guest": {"memory_mb": 4096}},  # Fly: ≤ 2 GB
    {"init": {"swap_size_mb": 512}},  # no swap
    {"schedule": "hourly"},  # no schedule
])
async def test_a_machine_outside_the_requirements_is_not_suspended(api, fake_fly, config) -> None:
    machine_id = await create(api, fake_fly, **config)
    refused = await api.post(f"/{machine_id}/suspend")
    assert refused.status_code == 400
    assert fake_fly.machines[machine_id]["state"] == "started"


@pytest.mark.parametrize("state", ["created", "stopped", "suspended", "suspending"])
async def test_only_a_started_machine_suspends(api, fake_fly, state) -> None:
    machine_id = await create(api, fake_fly)
    fake_fly.machines[machine_id]["state"] = state
    assert (await api.post(f"/{machine_id}/suspend")).status_code == 412


@pytest.mark.parametrize("state", ["started", "suspending", "starting"])
async def test_a_machine_that_is_not_stopped_or_suspended_cannot_be_started(api, fake_fly, state) -> None:
    machine_id = await create(api, fake_fly)
    fake_fly.machines[machine_id]["state"] = state
    fake_fly.resume_seconds = fake_fly.suspend_seconds = 60  # `starting`/`suspending` stay so
    fake_fly.machines[machine_id]["_changed"] = time.monotonic()
    assert (await api.post(f"/{machine_id}/start")).status_code == 412


async def test_stopping_a_suspended_auto_destroy_machine_destroys_it(api, fake_fly) -> None:
    machine_id = await create(api, fake_fly, auto_destroy=True)
    await api.post(f"/{machine_id}/suspend")
    await api.post(f"/{machine_id}/stop")
    assert fake_fly.machines[machine_id]["state"] == "destroyed"


async def test_per_machine_actions_are_limited_to_a_burst_of_three(api, fake_fly) -> None:
    machine_id = await create(api, fake_fly)
    statuses = []
    for _ in range(2):
        statuses.append((await api.post(f"/{machine_id}/suspend")).status_code)
        statuses.append((await api.post(f"/{machine_id}/start")).status_code)
    statuses.append((await api.post(f"/{machine_id}/suspend")).status_code)
    statuses.append((await api.post(f"/{machine_id}/suspend")).status_code)
    assert statuses[:5] == [200, 200, 200, 200, 200] and statuses[5] == 429


async def test_wait_refuses_a_state_fly_does_not_wait_for(api, fake_fly) -> None:
    machine_id = await create(api, fake_fly)
    assert (await api.get(f"/{machine_id}/wait", params={"state": "suspending"})).status_code == 400
