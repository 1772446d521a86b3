"""A start's admission with the replicas' store: the key's share and the session cap decided in one
round trip (dispatcher/store/share_ask.py, launches.py). Against the two taken one after the other
(`KeyShare.slot` around `Admission.slot`, as before) on a real redis-server as the AWS stack's store
user: each refusal is the same answer and leaves the store's records as they were; starts at two
replicas at once never pass the cap or a key's share; a store that lost its scripts loads them again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher.errors import ApiError
from dispatcher.sessions.admission import Admission
from dispatcher.sessions.key_share import LAUNCHING_SECONDS, KeyShare
from dispatcher.settings import Settings
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.store.conftest import settings_for, two_replicas
from tests.support.redis_server import RedisServer

CAP = 4  # MAX_CONCURRENT_SESSIONS: each key's share is half of it
SETTINGS = Settings.from_env({"MAX_CONCURRENT_SESSIONS": str(CAP)})
LASTS = SETTINGS.max_session_seconds + LAUNCHING_SECONDS  # how long a start's place is recorded
Start = Callable[[str, str], Awaitable[ApiError | None]]


async def nothing(_: str) -> None:
    return None


def share_and_cap(coordination: RedisCoordination, running: int) -> tuple[KeyShare, Admission]:
    share = KeyShare(SETTINGS, coordination.key_sessions, nothing, api_keys=2)

    async def count() -> int:
        return running

    return share, Admission(CAP, count, launches=coordination.launches(keep_seconds=10.0))


def starts(share: KeyShare, cap: Admission, *, together: bool) -> Start:
    """A start's admission, decided as now (`together`) or as before: the share's slot around the cap's."""

    async def start(caller: str, session_id: str) -> ApiError | None:
        if together:
            admitted = share.slot_with_cap(caller, session_id, internal=False, cap=cap.slot)
        else:
            admitted = _one_then_other(share, cap, caller, session_id)
        try:
            async with admitted:
                return None
        except ApiError as refused:
            return refused

    return start


@contextlib.asynccontextmanager
async def _one_then_other(share: KeyShare, cap: Admission, caller: str, session_id: str) -> AsyncIterator[None]:
    async with share.slot(caller, session_id, internal=False), cap.slot():
        yield


async def records(admin: Redis, prefix: str) -> dict[str, Any]:
    """Every record of the key's sessions and the launches: members, and whether each has a TTL."""
    found: dict[str, Any] = {}
    async for key in admin.scan_iter(match=f"{prefix}launches*"):
        name = key.removeprefix(prefix)
        if await admin.type(key) == "zset":
            found[name] = (await admin.zcard(key), await admin.pttl(key) > 0)
    return found


def answer(refused: ApiError | None) -> tuple[Any, ...] | None:
    return None if refused is None else (refused.status, refused.code, refused.message, refused.retry_after)


@pytest.mark.parametrize(("running", "held_before", "refused_code"), [
    (0, 2, "key_at_capacity"),  # the key holds its share: refused first, even with room under the cap
    (CAP - 1, 2, "key_at_capacity"),  # the key's share and the cap both full: the share's answer
    (CAP, 0, "at_capacity"),  # the cap is full, the key has room: the cap's answer, the key's place untaken
    (CAP - 1, 0, None),  # room in both
])
async def test_each_refusal_is_the_same_and_leaves_the_records_as_before(
        redis: RedisServer, admin: Redis, running: int, held_before: int, refused_code: str | None) -> None:
    results = {}
    for together in (False, True):
        prefix = f"{{voicefleet}}:t-admit-{together}-{running}-{held_before}:"
        coordination = RedisCoordination(settings_for(redis, "r-a", prefix))
        share, cap = share_and_cap(coordination, running)
        try:
            start = starts(share, cap, together=together)
            for n in range(held_before):  # the key's sessions already running (they ended no launch)
                assert await coordination.key_sessions.hold("caller-a", f"held-{n}", 2, LASTS) is None
            refused = await start("caller-a", "the-start")
            results[together] = (answer(refused), await records(admin, prefix))
        finally:
            await cap.aclose()
            await coordination.aclose()
            await admin.delete(*[k async for k in admin.scan_iter(match=f"{prefix}*")] or ["-"])
    assert results[True] == results[False]
    outcome = results[True][0]
    code = outcome[1] if outcome is not None else None
    assert code == refused_code, results
    if refused_code == "at_capacity":  # no place left behind for the refused start
        assert results[True][1].get("launches:key:caller-a", (0, False))[0] == 0, results


@pytest.mark.parametrize("held_before", [2, 0])
async def test_a_count_that_fails_still_answers_the_share_first(redis: RedisServer, admin: Redis,
                                                                held_before: int) -> None:
    """The first start waits for the provider's count; when that fails, a key at its share is still
    refused for its share (it was decided before the count), else the count's failure is the answer."""
    results = {}
    for together in (False, True):
        prefix = f"{{voicefleet}}:t-admit-count-{together}-{held_before}:"
        coordination = RedisCoordination(settings_for(redis, "r-a", prefix))
        share, _ = share_and_cap(coordination, 0)

        async def count() -> int:
            raise ApiError(502, "fly_unavailable", "the provider's list failed")

        cap = Admission(CAP, count, launches=coordination.launches(keep_seconds=10.0))
        try:
            for n in range(held_before):
                assert await coordination.key_sessions.hold("caller-a", f"held-{n}", 2, LASTS) is None
            results[together] = (answer(await starts(share, cap, together=together)("caller-a", "s-1")),
                                 await records(admin, prefix))
        finally:
            await cap.aclose()
            await coordination.aclose()
            await admin.delete(*[k async for k in admin.scan_iter(match=f"{prefix}*")] or ["-"])
    assert results[True] == results[False]
    outcome = results[True][0]
    assert outcome is not None and outcome[1] == ("key_at_capacity" if held_before else "fly_unavailable"), results


async def test_a_block_that_fails_gives_both_back(redis: RedisServer, admin: Redis, prefix: str) -> None:
    coordination = RedisCoordination(settings_for(redis, "r-a", prefix))
    share, cap = share_and_cap(coordination, 0)
    try:
        with pytest.raises(RuntimeError):
            async with share.slot_with_cap("caller-a", "s-1", internal=False, cap=cap.slot):
                assert (await records(admin, prefix))["launches:key:caller-a"][0] == 1
                raise RuntimeError("the launch failed")
        assert await admin.zcard(f"{prefix}launches:key:caller-a") == 0
        assert await admin.zcard(f"{prefix}launches") == 0
    finally:
        await cap.aclose()
        await coordination.aclose()


async def test_starts_at_two_replicas_at_once_never_pass_the_cap_or_a_share(redis: RedisServer, prefix: str) -> None:
    async with two_replicas(redis, prefix) as pair:
        admitted = [share_and_cap(replica, 0) for replica in pair]
        try:
            tries = [starts(share, cap, together=True) for share, cap in admitted]
            # Three keys, each with a share of 2, 24 starts at once across both replicas: the cap is 4.
            answers = await asyncio.gather(*(tries[n % 2](f"caller-{n % 3}", f"s-{n}") for n in range(24)))
            taken = [n for n, refused in enumerate(answers) if refused is None]
            assert len(taken) == CAP, answers
            for caller in range(3):
                assert sum(1 for n in taken if n % 3 == caller) <= 2, answers
            assert {a.code for a in answers if a is not None} <= {"at_capacity", "key_at_capacity"}
        finally:
            for _, cap in admitted:
                await cap.aclose()


async def test_a_store_that_lost_its_scripts_loads_them_again(redis: RedisServer, admin: Redis, prefix: str) -> None:
    coordination = RedisCoordination(settings_for(redis, "r-a", prefix))
    share, cap = share_and_cap(coordination, 0)
    start = starts(share, cap, together=True)
    try:
        assert await start("caller-a", "s-1") is None
        await admin.script_flush()  # a restarted or flushed store: NOSCRIPT at the next EVALSHA
        assert await start("caller-a", "s-2") is None
        refused = await start("caller-a", "s-3")  # the share (2) is held: the script decided
        assert refused is not None and refused.code == "key_at_capacity", refused
        assert await admin.zcard(f"{prefix}launches") == 2
    finally:
        await cap.aclose()
        await coordination.aclose()
