"""Revoked runtime secrets are compacted into their key name's floor: the record stays bounded under
any number of rotations, and a copy that still holds a dropped secret live (a region away, an old
store) never brings it back, whatever order the records merge in. After compaction the holder of a
dropped secret is told `unauthorized` where it was told `api_key_revoked`."""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
from typing import Any

import pytest

from dispatcher.api import runtime_entries, runtime_floors
from dispatcher.api.runtime_entries import Entries, checked, merged, views
from dispatcher.api.runtime_floors import Keeping
from dispatcher.api.runtime_keys import RuntimeKeys, new_secret
from dispatcher.api.runtime_settings import REVOKED_SETTINGS, RuntimeSettings
from dispatcher.store.runtime_book import MemoryRuntimeBook
from tests.dispatcher.api.test_runtime_entries import change

DAY_MS = runtime_floors.DAY_MS


def record_of(name: str) -> dict[str, Any]:
    """A secret's record as the record keeps it, made with no scrypt (what the tests below count)."""
    return {"name": name, "salt": secrets.token_hex(16), "digest": secrets.token_hex(32), "created": 1.0,
            "by": "admin-1", "check": secrets.token_hex(3)}


def revoke(entries: Entries, at: tuple[int, str], secret_id: str) -> Entries:
    before = views(entries)
    keys = {k: v for k, v in before[1].items() if k != secret_id}
    return runtime_entries.stamped(entries, before, (before[0], keys), (), "admin-1", at)[0]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def rotate(settings: RuntimeSettings, name: str) -> str:
    """`keys create NAME --another`, then the previous secrets of NAME revoked by id: one rotation."""
    made = secrets.token_hex(6)

    def create(record: dict[str, Any]) -> list[dict[str, Any]]:
        record["keys"][made] = record_of(name)
        return [{"by": "admin-1", "action": "key.create"}]

    def revoke_old(record: dict[str, Any]) -> list[dict[str, Any]]:
        for secret_id in [i for i, r in record["keys"].items() if r["name"] == name and i != made]:
            del record["keys"][secret_id]
        return [{"by": "admin-1", "action": "key.revoke"}]

    await settings.change(create)
    await settings.change(revoke_old)
    return made


def size(settings: RuntimeSettings) -> tuple[int, int]:
    entries = settings.entries()
    return sum(len(part) for part in entries.values()), len(json.dumps(entries, separators=(",", ":")))


# Rotations enough to pass either bound six times over: unbounded, the record would hold every one of them.
ROTATIONS = 240


@pytest.mark.parametrize(("keeping", "step_s", "most"), [
    (Keeping(most=40), 1.0, 40),  # rotated every second: the count bounds it
    (Keeping(days=1.0), 3600.0, 25),  # rotated every hour: a day's revocations are kept (ten days' rotations)
])
async def test_rotations_far_past_the_bound_leave_a_bounded_record(keeping: Keeping, step_s: float, most: int) -> None:
    clock = Clock()
    settings = RuntimeSettings(MemoryRuntimeBook(), RuntimeKeys(), region="eu", clock=clock, keeping=keeping)
    sizes = []
    for n in range(ROTATIONS):
        clock.now += step_s
        await rotate(settings, f"client-{n % 3}")
        sizes.append(size(settings))
    entries = settings.entries()
    revoked = [e for e in entries["secrets"].values() if "revoked" in e]
    assert len(revoked) <= most and len(views(entries)[1]) == 3
    assert set(entries["floors"]) == {"client-0", "client-1", "client-2"}
    # Bounded: live secrets, the revoked ones kept, one floor per name; at about 230 bytes a revoked one.
    assert max(count for count, _ in sizes) <= 3 + most + 3 + 1
    assert max(chars for _, chars in sizes) <= 3 * 260 + most * 240 + 3 * 60


async def test_a_settings_keys_revocation_is_never_compacted() -> None:
    """It keeps no slow hash: its key lives in DISPATCHER_API_KEYS, and only its entry refuses it."""
    settings = RuntimeSettings(MemoryRuntimeBook(), RuntimeKeys(), region="eu", keeping=Keeping(most=1))

    def settings_key(record: dict[str, Any]) -> list[dict[str, Any]]:
        record[REVOKED_SETTINGS] = [("0123456789ab", "acme")]
        return [{"by": "admin-1", "action": "key.revoke"}]

    await settings.change(settings_key)
    for _ in range(3):
        await rotate(settings, "acme")
    assert "revoked" in settings.entries()["secrets"]["0123456789ab"]


def compacted_and_stale() -> tuple[Entries, Entries, str]:
    """eu made acme's secret, us took it and went away; eu revoked it and compacted it (two rotations
    more, one revoked secret kept)."""
    made, secret_id = record_of("acme"), secrets.token_hex(6)
    start, _ = change(runtime_entries.empty(), (1000, "eu"), made={secret_id: made})
    stale = start  # us's copy, live
    eu = revoke(start, (2000, "eu"), secret_id)
    for at in (3000, 4000):
        another = secrets.token_hex(6)
        eu, _ = change(eu, (at, "eu"), made={another: record_of("acme")})
        eu = revoke(eu, (at + 1, "eu"), another)
    secrets_, floors = runtime_floors.compacted(eu["secrets"], eu["floors"], 10_000, Keeping(most=1))
    return {**eu, "secrets": secrets_, "floors": floors}, stale, secret_id


def test_a_copy_holding_a_compacted_secret_live_never_brings_it_back_in_any_order() -> None:
    eu, stale, secret_id = compacted_and_stale()
    assert secret_id not in eu["secrets"] and eu["floors"]["acme"]["version"] == [3001, "eu"]
    # ap took every change; us's copy is stale; an old store copy of eu is stale too.
    ap = merged(stale, eu)
    outcomes = set()
    for order in itertools.permutations([eu, stale, ap, stale]):
        entries = runtime_entries.empty()
        for record in order:
            entries = merged(entries, record)
            entries = merged(entries, record)  # taken twice, taken once
        assert secret_id not in views(entries)[1]
        outcomes.add(runtime_entries.digest(entries))
    assert outcomes == {runtime_entries.digest(eu)}
    # A record sent whole between regions keeps its floors.
    assert merged(stale, checked(json.loads(json.dumps(eu)), latest_ms=20_000)) == eu


def test_a_secret_made_after_the_floor_or_never_held_by_the_floors_record_stands() -> None:
    eu, stale, _ = compacted_and_stale()
    fresh_id = secrets.token_hex(6)
    us, _ = change(stale, (5000, "us"), made={fresh_id: record_of("acme")})  # made after the floor
    other_id = secrets.token_hex(6)
    ap, _ = change(stale, (1500, "ap"), made={other_id: record_of("beta")})  # another name: no floor
    joined = merged(merged(eu, us), ap)
    assert {fresh_id, other_id} <= set(views(joined)[1])


def test_floors_out_of_shape_or_pushed_by_another_region_are_refused() -> None:
    with pytest.raises(ValueError, match="no version"):
        checked({"floors": {"acme": {"version": [1]}}})
    with pytest.raises(ValueError, match="no key name"):
        checked({"floors": {"Acme!": {"version": [1, "eu"]}}})
    with pytest.raises(ValueError, match="did not make it"):
        checked({"floors": {"acme": {"version": [1, "eu"]}}}, makers={"us"})
    with pytest.raises(ValueError, match="further ahead"):  # a floor far ahead would drop every secret
        checked({"floors": {"acme": {"version": [10**12, "eu"]}}}, latest_ms=1000)


async def test_a_revoked_secret_is_told_so_until_compacted_then_unauthorized_like_any_unknown_key() -> None:
    clock = Clock()
    book = MemoryRuntimeBook()
    settings = RuntimeSettings(book, RuntimeKeys(), region="eu", clock=clock, keeping=Keeping(days=1.0))
    secret, record = new_secret("acme", "admin-1")

    def create(current: dict[str, Any]) -> list[dict[str, Any]]:
        current["keys"][record.secret_id] = record.to_json()
        return [{"by": "admin-1", "action": "key.create"}]

    def revoke_it(current: dict[str, Any]) -> list[dict[str, Any]]:
        del current["keys"][record.secret_id]
        return [{"by": "admin-1", "action": "key.revoke"}]

    await settings.change(create)
    await settings.change(revoke_it)
    told = RuntimeKeys()  # a replica that never verified the secret
    told.seen(views(settings.entries())[1], runtime_entries.revoked_records(settings.entries()))
    assert await told.verify_off_loop(secret) is None and told.was_revoked(secret)  # api_key_revoked

    clock.now += 2 * 86_400
    await rotate(settings, "beta")  # the next change compacts what is past its day
    later = RuntimeKeys()
    later.seen(views(settings.entries())[1], runtime_entries.revoked_records(settings.entries()))
    assert await later.verify_off_loop(secret) is None and not later.was_revoked(secret)  # unauthorized
    assert settings.entries()["floors"]["acme"]["version"][1] == "eu"


def test_a_record_with_no_floor_has_the_digest_it_had_before_floors() -> None:
    """A region upgraded, holding the same entries as one not yet, tells the same digest: no pull."""
    entries, _ = change(runtime_entries.empty(), (1000, "eu"), made={secrets.token_hex(6): record_of("acme")})
    before = {part: held for part, held in entries.items() if part != "floors"}
    text = json.dumps(before, sort_keys=True, separators=(",", ":"))
    assert runtime_entries.digest(entries) == hashlib.sha256(text.encode()).hexdigest()[:32]
