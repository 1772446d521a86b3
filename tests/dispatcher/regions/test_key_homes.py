"""An Idempotency-Key's home: every region computes the same one, and a home whose store does not
answer refuses the start (503) rather than guess a holder."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from dispatcher.errors import ApiError
from dispatcher.regions.config import Regions
from dispatcher.regions.home import HOLD_SECONDS, PROVISIONAL_SECONDS, KeyHomes, home_region, key_digest
from dispatcher.regions.peers import Peers
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.memory import LocalFirstClaims

URLS = MappingProxyType({name: f"https://{name}.example" for name in ("eu", "us", "ap")})


def at(here: str) -> Regions:
    return Regions(here, URLS, b"k" * 32)


class DownStore:
    async def first(self, what: str, value: str, seconds: float) -> str:
        raise StoreUnavailable("the store does not answer")


def test_every_region_computes_one_home_and_the_homes_spread() -> None:
    homes = {home_region(at(here), "caller", "order-1") for here in ("eu", "us", "ap")}
    assert len(homes) == 1
    assert {home_region(at("eu"), "caller", f"order-{n}") for n in range(60)} == {"eu", "us", "ap"}
    assert key_digest("caller", "order-1") != key_digest("caller2", "order-1")


async def test_a_key_homed_here_is_held_by_the_first_region_recorded() -> None:
    homes = KeyHomes(Peers(at("eu")), LocalFirstClaims())
    key = next(f"order-{n}" for n in range(100) if home_region(at("eu"), "caller", f"order-{n}") == "eu")
    assert await homes.holder("caller", key, "us") == "us"
    assert await homes.holder("caller", key) == "us"  # a later start here finds it held there
    await homes.aclose()


async def test_a_home_whose_store_does_not_answer_refuses_rather_than_guesses() -> None:
    homes = KeyHomes(Peers(at("eu")), DownStore())
    key = next(f"order-{n}" for n in range(100) if home_region(at("eu"), "caller", f"order-{n}") == "eu")
    with pytest.raises(ApiError) as refused:
        await homes.holder("caller", key)
    assert (refused.value.status, refused.value.code, refused.value.retry_after) == (503, "region_unreachable", 1)
    await homes.aclose()


async def test_a_key_homed_at_a_peer_never_seen_answering_is_refused_naming_it() -> None:
    homes = KeyHomes(Peers(at("eu")), LocalFirstClaims())
    key = next(f"order-{n}" for n in range(100) if home_region(at("eu"), "caller", f"order-{n}") == "us")
    with pytest.raises(ApiError) as refused:
        await homes.holder("caller", key)
    assert refused.value.status == 503 and "home region us" in refused.value.message
    await homes.aclose()


def test_a_homes_request_body_is_checked() -> None:
    homes = KeyHomes(Peers(at("eu")), LocalFirstClaims())
    assert homes.parse_record({"key": "a" * 64, "region": "us"}) == ("a" * 64, "us", "record")
    assert homes.parse_record({"key": "a" * 64, "region": "us", "provisional": True})[2] == "provisional"
    assert homes.parse_record({"key": "a" * 64, "region": "us", "keep": True})[2] == "keep"
    for bad in ({"key": "a" * 64, "region": "mars"}, {"key": "short", "region": "us"}, ["not", "an object"]):
        with pytest.raises(ApiError):
            homes.parse_record(bad)


async def test_a_stand_in_decides_only_for_a_home_found_down_never_for_one_not_heard_from_yet() -> None:
    """`standby` (a dial-in's caller is on the line): a home the polls found down is stood in for by the
    next region in the hash order; a home this replica has not polled yet (it just started) may well
    answer, and a stand-in deciding for it could give the call a second bot: refused as before."""
    peers = Peers(at("eu"))
    homes = KeyHomes(peers, LocalFirstClaims())
    key = next(f"call-{n}" for n in range(200) if home_region(at("eu"), "phone", f"call-{n}") == "us")
    with pytest.raises(ApiError) as refused:
        await homes.holder("phone", key, standby=True)
    assert "not heard from yet" in refused.value.message
    for name in ("us", "ap"):
        down = peers.peer(name)
        assert down is not None
        down.reachable, down.problem = False, "it does not answer"
    assert await homes.holder("phone", key, standby=True) == "eu"  # eu, the one left, stands in and holds it
    await homes.aclose()


async def test_a_storeless_home_full_of_live_records_refuses_a_new_key_rather_than_forget_one() -> None:
    """Forgetting the oldest live record would let a replay of that key in another region be recorded
    afresh there and start a second session: a home without a store refuses the new key instead."""
    now = [0.0]
    claims = LocalFirstClaims(clock=lambda: now[0], most=2)
    homes = KeyHomes(Peers(at("eu")), claims)
    assert await homes.record("a" * 64, "eu") == "eu"
    assert await homes.record("b" * 64, "us", "provisional") == "us"
    with pytest.raises(ApiError) as refused:
        await homes.record("c" * 64, "us")
    assert refused.value.status == 503 and "retry later" in refused.value.message
    assert await homes.record("a" * 64, "us") == "eu"  # the live record still decides
    now[0] = PROVISIONAL_SECONDS + 1  # the provisional record ran out: its place is free
    assert await homes.record("c" * 64, "us") == "us"


async def test_a_provisional_record_is_kept_for_the_day_only_for_its_holder() -> None:
    now = [0.0]
    homes = KeyHomes(Peers(at("eu")), LocalFirstClaims(clock=lambda: now[0]))
    assert await homes.record("a" * 64, "us", "provisional") == "us"
    await homes.record("a" * 64, "ap", "keep")  # not its holder: nothing kept
    now[0] = PROVISIONAL_SECONDS + 1
    assert await homes.record("a" * 64, "ap") == "ap"  # ran out: a start refused after its record
    await homes.record("a" * 64, "ap", "keep")
    now[0] = HOLD_SECONDS - 1
    assert await homes.record("a" * 64, "us") == "ap"
