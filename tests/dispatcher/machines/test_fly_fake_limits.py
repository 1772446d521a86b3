"""The fake Fly API counts its app-wide create limit as a call arrives, as Fly's API does
(https://fly.io/docs/machines/api/working-with-machines-api/#rate-limits): a create Fly admitted
and that then hangs (a test's hold) is served when it lands, however many creates arrived while it
hung; the creates past the limit are answered 429 at once, never held."""

from __future__ import annotations

import asyncio

import httpx

from tests.fakes.fly import API_TOKEN, APP, BOT_IMAGE, FakeFly
from tests.support.http_client import api_client
from tests.support.waiting import within


async def create(api: httpx.AsyncClient, name: str) -> httpx.Response:
    return await api.post(f"/v1/apps/{APP}/machines", json={"name": name, "config": {"image": BOT_IMAGE}})


async def test_a_held_create_that_fly_admitted_lands_however_many_creates_came_while_it_hung(
        fake_fly: FakeFly) -> None:
    fake_fly.create_per_second = 0.001  # the burst of 3 alone, whatever the machine's load
    hold = fake_fly.hold(times=1, method="POST", path_suffix="/machines")
    async with api_client(base_url=fake_fly.url, headers={"Authorization": f"Bearer {API_TOKEN}"}) as api:
        held = asyncio.create_task(create(api, "held"))
        try:
            assert await within(lambda: hold.caught == 1, 10, interval=0.01) is not None
            later = [await asyncio.wait_for(create(api, name), 10) for name in ("b", "c", "d")]
            assert [r.status_code for r in later] == [200, 200, 429], [r.text for r in later]
        finally:
            hold.release()
        landed = await asyncio.wait_for(held, 10)
    assert landed.status_code == 200, landed.text
    assert sorted(m["name"] for m in fake_fly.machines.values()) == ["b", "c", "held"]
    assert fake_fly.refused_creates == 1
