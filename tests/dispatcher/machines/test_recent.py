"""The providers' id caches are bounded: a long-lived dispatcher does not keep every id it saw."""

from __future__ import annotations

import time

import pytest

from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.fly.provider import FlySettings
from dispatcher.machines.fly.reserve import FlyWarmMachines
from dispatcher.recent import Recent
from dispatcher.store.local import LocalCoordination
from tests.fakes.fly import FakeFly


def test_the_newest_keys_are_kept_and_a_write_makes_a_key_the_newest() -> None:
    ids: Recent[str, int] = Recent(3)
    for n, key in enumerate("abcd"):
        ids[key] = n
    assert list(ids.items()) == [("b", 1), ("c", 2), ("d", 3)]  # "a", the oldest, forgotten
    ids["b"] = 10  # rewritten: now the newest
    ids["e"] = 4
    assert list(ids) == ["d", "b", "e"]
    assert ids.pop("d") == 3 and ids.pop("gone", None) is None
    assert ids.setdefault("f", 5) == 5 and ids.get("b") == 10 and len(ids) == 3


def test_a_recent_map_keeps_at_least_one_key() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Recent(0)


async def test_a_fly_replica_forgets_the_oldest_reserve_bots_proved_here_but_claimed_elsewhere(
    fake_fly: FakeFly,
) -> None:
    # A reserve bot's hello here records its machine; a claim at another replica never removes it.
    fly = FlyWarmMachines(FlySettings.from_env(fake_fly.env), LocalCoordination(), channel_url="ws://10.0.0.2/ch")
    try:
        fly._idle_ids.limit = 3  # noqa: SLF001 (the default keeps 100,000: the bound, at a size a test can fill)
        grants = [BotGrant("idle", f"b{n}", int(time.time()) + 600) for n in range(5)]
        for n, grant in enumerate(grants):
            fly.verified(grant, f"m{n}", fake_fly.env["FLY_APP"])
        assert [fly.known_id(grant) for grant in grants] == [None, None, "m2", "m3", "m4"]
    finally:
        await fly.aclose()
