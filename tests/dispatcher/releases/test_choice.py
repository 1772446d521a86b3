"""A session's release: its pin, its key's, else drawn by weight from its id."""

from __future__ import annotations

import asyncio
import math

import pytest

from dispatcher.errors import ApiError
from dispatcher.releases.catalogue import Catalogue, Release
from dispatcher.releases.choice import DrawKey, drawn, release_for
from dispatcher.releases.live import LiveReleases
from dispatcher.releases.traffic import Traffic
from dispatcher.sessions.ids import new_session_id
from dispatcher.store.release_book import MemoryReleaseBook

CATALOGUE = Catalogue((Release("stable", {"*": "a"}), Release("canary", {"*": "b"}), Release("staging", {"*": "c"})))
TRAFFIC = Traffic({"stable": 90, "canary": 10, "staging": 0}, "stable", (1, ""))
KEY = DrawKey(b"a deployment secret")


def test_a_thousand_starts_split_by_weight_within_binomial_bounds() -> None:
    # Session ids as the dispatcher derives them from a key and Idempotency-Keys.
    ids = [new_session_id(b"owner-key", f"start-{n}", "") for n in range(1000)]
    canary = sum(drawn(TRAFFIC, session_id, KEY) == "canary" for session_id in ids)
    sigma = math.sqrt(1000 * 0.1 * 0.9)
    assert abs(canary - 100) <= 4 * sigma, canary
    assert all(drawn(TRAFFIC, session_id, KEY) != "staging" for session_id in ids)  # weight 0: never drawn


def test_the_same_idempotency_key_draws_the_same_release() -> None:
    session_id = new_session_id(b"owner-key", "retry-me", "")
    assert len({drawn(TRAFFIC, session_id, KEY) for _ in range(5)}) == 1


def test_a_pin_wins_even_at_weight_zero() -> None:
    release, how = release_for(TRAFFIC, CATALOGUE, "s1", KEY, pinned="staging", key_default="canary")
    assert (release.name, how) == ("staging", "pinned")


def test_a_keys_default_release_comes_before_the_draw() -> None:
    release, how = release_for(TRAFFIC, CATALOGUE, "s1", KEY, key_default="staging")
    assert (release.name, how) == ("staging", "key")


def test_an_unknown_pin_is_refused_naming_the_live_ones() -> None:
    with pytest.raises(ApiError) as refused:
        release_for(TRAFFIC, CATALOGUE, "s1", KEY, pinned="nope")
    assert refused.value.status == 422 and "stable, canary, staging" in refused.value.message


def test_a_release_at_100_takes_every_draw() -> None:
    everything = Traffic({"stable": 0, "canary": 100, "staging": 0}, "canary", (1, ""))
    assert {drawn(everything, f"s{n}", KEY) for n in range(200)} == {"canary"}


def test_a_release_this_replicas_list_lacks_is_served_by_the_stable_one() -> None:
    newer = Traffic({"stable": 0, "canary": 0, "staging": 0, "brand-new": 100}, "stable", (1, ""))
    release, how = release_for(newer, CATALOGUE, "s1", KEY)
    assert (release.name, how) == ("stable", "weight")


HALF = Traffic({"stable": 50, "canary": 50, "staging": 0}, "stable", (1, ""))


def test_the_draw_turns_on_the_deployments_secret_so_a_client_knowing_its_ids_cannot_compute_it() -> None:
    # An unnamed key can compute its own session ids; which of them land on the canary it cannot.
    ids = [new_session_id(b"owner-key", f"start-{n}", "") for n in range(400)]
    ours = [drawn(HALF, session_id, KEY) for session_id in ids]
    guessed = [drawn(HALF, session_id, DrawKey(b"any other secret")) for session_id in ids]
    agree = sum(a == b for a, b in zip(ours, guessed, strict=True))
    assert abs(agree - 200) <= 4 * math.sqrt(400 * 0.25), agree  # a coin's agreement, no better


def test_replicas_with_the_same_secret_draw_alike() -> None:
    replicas = [LiveReleases(CATALOGUE, MemoryReleaseBook(), draw_secret=b"the deployment's secret") for _ in "ab"]
    for replica in replicas:
        asyncio.run(replica.change(lambda _, version: Traffic(dict(HALF.weights), "stable", version)))
    ids = [new_session_id(b"owner-key", f"start-{n}", "") for n in range(100)]
    chosen = [[replica.choose(i, pinned=None, caller_id="c")[0].name for i in ids] for replica in replicas]
    assert chosen[0] == chosen[1] and {"stable", "canary"} == set(chosen[0])
