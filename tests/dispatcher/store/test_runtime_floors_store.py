"""The runtime record in a real redis-server, as the AWS stack's store user, stays bounded however
often keys are rotated: one replica rotates a key name's secrets a thousand times, the record stored
keeps the live secrets, the newest revoked ones and one floor, and the other replica refuses every
secret rotated out."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from dispatcher.api.runtime_floors import Keeping
from dispatcher.api.runtime_keys import RuntimeKeys, new_secret
from dispatcher.api.runtime_settings import RuntimeSettings
from tests.dispatcher.api.test_runtime_floors import rotate
from tests.dispatcher.store.conftest import two_replicas
from tests.support.redis_server import RedisServer

ROTATIONS = 1000
KEPT = 20


async def test_a_thousand_rotations_leave_a_bounded_record_in_the_store(redis: RedisServer, prefix: str,
                                                                       admin: Redis) -> None:
    async with two_replicas(redis, prefix) as (a, b):
        here = RuntimeSettings(a.runtime, RuntimeKeys(), region="eu", keeping=Keeping(most=KEPT))
        there = RuntimeSettings(b.runtime, RuntimeKeys(), region="eu", keeping=Keeping(most=KEPT))
        secret, record = new_secret("acme", "admin-1")  # the first secret: its holder is refused at the end

        def create(current: dict[str, object]) -> list[dict[str, object]]:
            current["keys"][record.secret_id] = record.to_json()  # type: ignore[index]
            return [{"by": "admin-1", "action": "key.create"}]

        await here.change(create)
        stored = []
        for _ in range(ROTATIONS):
            await rotate(here, "acme")
            stored.append(len(await admin.hget(f"{prefix}runtime:settings", "record") or ""))
        await there.refresh()
        entries = json.loads(await admin.hget(f"{prefix}runtime:settings", "record") or "{}")["entries"]
        revoked = [e for e in entries["secrets"].values() if "revoked" in e]
        assert len(revoked) == KEPT and len(there.keys.records) == 1 and list(entries["floors"]) == ["acme"]
        # About 230 bytes a revoked secret: the record's size stops growing after the first KEPT rotations.
        assert max(stored) <= KEPT * 240 + 1000 and max(stored[KEPT:]) - min(stored[KEPT:]) < 200
        assert await there.keys.verify_off_loop(secret) is None and not there.keys.was_revoked(secret)
        assert redis.refused() == []
