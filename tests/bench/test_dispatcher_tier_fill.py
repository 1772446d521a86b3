"""A copy of a session (bench/dispatcher_tier_fill.py) is what a real start leaves: a real replica
starts one session against the fast fakes and a real store, the fill copies it, and the copy holds
the same records (by key, type and time to live), the same places in the deployment's sets and
hashes (the running sessions admission counts, the key's share, its budget ledger, the index), the
same entry, timeline and machine, renamed; only the start's short-lived records (`NOT_COPIED`) go."""

from __future__ import annotations

import asyncio
import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bench.dispatcher_tier import Tier
from bench.dispatcher_tier_fill import FLY_APP, NOT_COPIED, Copier, copy_sessions, renamed
from bench.fakes_process import FakesProcess
from dispatcher.machines.fly.provider import META_SESSION

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed (apt-get install redis-server; .ci/run does)")


def records(admin: redis.Redis, session_id: str) -> dict[str, tuple[str, bool]]:
    """The keys naming the session, the id made `<id>`: their type and whether they expire."""
    return {key.replace(session_id, "<id>"): (str(admin.type(key)), admin.pttl(key) > 0)
            for key in admin.scan_iter(match=f"*{session_id}*", count=1000)}


def places(admin: redis.Redis, session_id: str) -> set[str]:
    """The keys not named by the session that hold it: a sorted set's member, a hash's field, a set's member."""
    held = set()
    for key in admin.scan_iter(count=1000):
        kind = admin.type(key)
        if session_id in key or kind not in ("zset", "hash", "set"):
            continue
        if (kind == "zset" and admin.zscore(key, session_id) is not None
                or kind == "hash" and admin.hexists(key, session_id)
                or kind == "set" and admin.sismember(key, session_id)):
            held.add(key)
    return held


Parts = tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]


async def read_back(tier: Tier, fakes_url: str, original: str, copy: str) -> tuple[Parts, Parts]:
    """(the original's entry, events and machine configuration, renamed; the copy's), as the
    dispatcher's modules and Fly's list read them."""
    async with httpx.AsyncClient(base_url=fakes_url, timeout=30) as fly:
        copier = Copier(tier.store, fly)
        try:
            read = [await copier.original(session_id) for session_id in (original, copy)]
        finally:
            await copier.aclose()
    first, second = read
    entry, events, config = first.copied(copy)
    return (entry | {"created": 0}, events, config), (second.entry | {"created": 0}, second.events,
                                                      second.machine_config)


def test_a_copy_holds_every_record_and_place_a_real_start_leaves(tmp_path: Path) -> None:
    with ExitStack() as stack, FakesProcess(latency=0.01) as fakes:
        tier = Tier(stack, tmp_path, fakes, replicas=1, budgets=False)
        assert tier.burst(1, 1).errors == 0
        original = tier.newest()
        copies = asyncio.run(copy_sessions(tier.store, fakes.url, original, 3, time.time(), batch=2))
        admin = tier.store.admin()
        kept = {key: kind for key, kind in records(admin, original).items() if key not in NOT_COPIED}
        assert {"{voicefleet}:sessions:entry:<id>", "{voicefleet}:timeline:<id>"} <= set(kept)
        assert places(admin, original) >= {"{voicefleet}:launches:running", "{voicefleet}:sessions:all"}
        for copy in copies:
            assert records(admin, copy) == kept
            assert places(admin, copy) == places(admin, original)
        wanted, found = asyncio.run(read_back(tier, fakes.url, original, copies[-1]))
        assert found == wanted
        listed = httpx.get(f"{fakes.url}/v1/apps/{FLY_APP}/machines", params={f"metadata.{META_SESSION}": copies[0]})
        assert [m["config"] for m in listed.json()] == [renamed(wanted[2], copies[-1], copies[0])]
