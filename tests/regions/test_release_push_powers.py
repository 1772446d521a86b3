"""A push signed with REGION_SECRET can do no more than an admin key at the region it reaches: two
regions as real processes on loopback, `next` waiting for its smoke session, pushes signed as `eu`
sent to `us` (as whoever holds the secret could)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.regions.support import reachable, regions
from tests.regions.test_releases_across_regions import push
from tests.support.releases import admin, held_version, release_env, until, weights

FORGER = "admin-0a1b2c3d4e5f"


def record(ms: int, region: str, weights: dict[str, int], **fields: object) -> dict[str, object]:
    return {"weights": weights, "stable": "stable", "version": [ms, region], "changed_by": FORGER,
            "reason": "next promoted", "held": {}, **fields}


def test_a_signed_push_cannot_pass_the_smoke_gate_forge_its_region_or_freeze_the_list(tmp_path: Path) -> None:
    env = release_env(tmp_path, "stable=100")  # next is listed, its smoke session not run
    with regions(tmp_path, ("eu", "us"), {"eu": env, "us": env}) as (urls, running):
        until(lambda: reachable(running["eu"], "us") and reachable(running["us"], "eu"))
        untouched = {"stable": 100, "next": 0}
        now = int(time.time() * 1000)

        elsewhere = push(urls, "eu", "us", record(now + 20_000, "ap", {"stable": 0, "next": 100}))
        assert elsewhere.status_code == 422 and "signed by eu" in elsewhere.text, elsewhere.text
        untested = push(urls, "eu", "us", record(now + 1, "eu", {"stable": 0, "next": 100}))
        assert untested.status_code == 409, untested.text
        assert untested.json()["error"]["code"] == "release_not_smoke_tested"
        assert admin("PUT", urls["us"], "/releases/next", json={"weight": 100}).status_code == 409  # as an admin's
        assert weights(urls["us"]) == weights(urls["eu"]) == untouched

        frozen = record(now + 2, "eu", {"stable": 100, "v9": 0}, listed=["stable", "v9"],
                        generation="9999-12-31T23:59:59Z", reason="v9 listed")
        taken = push(urls, "eu", "us", frozen)
        assert taken.status_code == 200 and taken.json()["adopted"] is True, taken.text
        # Each region fits the weights to its own list again: v9 is none of theirs, next still waits. `us`
        # records that fitting as a change of its own (its reading loop's, within a second), newer than
        # anything pushed so far: the pushes below are versioned after it, or `us` would answer them
        # 409 "holds a newer change" before judging them.
        until(lambda: held_version(urls["us"])[1] == "us" and weights(urls["us"]) == untouched
              and weights(urls["eu"]) == untouched)
        fitted = held_version(urls["us"])[0]
        trail = admin("GET", urls["us"], "/releases/history").json()["changes"]
        line = next(change for change in trail if change["reason"] == "v9 listed")
        assert line["by"] == f"region eu: {FORGER}" and line["region"] == "eu"

        # Nothing moved but a verdict (no entry reads as passed): kept, it would open the gate to the next raise.
        marked = push(urls, "eu", "us", record(fitted + 1, "eu", untouched, reason="nothing moved"))
        assert marked.status_code == 409 and "next" in marked.text, marked.text
        # A release `us` does not list: the next fitting would make the untested `next` the stable one.
        pending = {"next": {"status": "pending"}}
        ghost = push(urls, "eu", "us", record(fitted + 2, "eu", {"ghost": 100, "next": 0}, stable="ghost",
                                              smoke=pending))
        assert ghost.status_code == 422 and ghost.json()["error"]["code"] == "unknown_release", ghost.text
        assert admin("PUT", urls["us"], "/releases/next", json={"weight": 100}).status_code == 409
        assert weights(urls["us"]) == untouched
