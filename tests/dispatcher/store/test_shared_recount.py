"""Admission's recount shared by the replicas (dispatcher/sessions/admission.py, store/launches.py):
with three replicas on one real redis-server, starts flowing at every replica for a few refresh
windows list the provider about once per window for the whole deployment (each replica counting
for itself listed three times as often: on Fly, every app, 1 list/s each), and the cap holds."""

from __future__ import annotations

import asyncio

from dispatcher.errors import ApiError
from dispatcher.sessions.admission import Admission
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.store.conftest import settings_for
from tests.support.redis_server import RedisServer

REFRESH = 0.2


class Provider:
    def __init__(self) -> None:
        self.active = 0
        self.lists = 0

    async def count(self) -> int:
        self.lists += 1
        await asyncio.sleep(0.05)  # a list's round trip
        return self.active


async def test_three_replicas_list_the_provider_about_once_per_refresh(redis: RedisServer, prefix: str) -> None:
    replicas = [RedisCoordination(settings_for(redis, f"r-{n}", prefix)) for n in range(3)]
    provider = Provider()
    admissions = [Admission(30, provider.count, launches=r.launches(keep_seconds=10.0), refresh_seconds=REFRESH)
                  for r in replicas]

    async def start(admission: Admission) -> bool:
        try:
            async with admission.slot():
                provider.active += 1
        except ApiError:
            return False
        return True

    try:
        admitted = 0
        loop = asyncio.get_running_loop()
        began = loop.time()
        # At least six refreshes, and on until the cap is reached: a loaded machine runs fewer rounds
        # in that time (27 of 30 admitted once in a full run), which says nothing of the cap.
        while loop.time() - began < 6 * REFRESH or (admitted < 30 and loop.time() - began < 60 * REFRESH):
            results = await asyncio.gather(*(start(a) for a in admissions))
            admitted += sum(results)
            await asyncio.sleep(0.02)
        windows = (loop.time() - began) / REFRESH
        assert provider.lists <= windows + 2, (provider.lists, windows)  # each replica's own: ~3 × windows
        assert admitted == 30 and provider.active == 30  # never past the cap
    finally:
        for admission in admissions:
            await admission.aclose()
        for replica in replicas:
            await replica.aclose()
