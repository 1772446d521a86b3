"""A key's budget is one for the deployment: two regional dispatchers, real processes on loopback,
each on a redis-server of its own. With a budget of one session at once, a session at eu refuses the
key's next start at us (and one relayed there with `"region"`), naming the deployment's use; its end
frees the budget at us. Nothing is timed: each wait polls for what a region shows, with a generous
deadline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.regions.stored_regions import ADMIN, Region, stored_regions
from tests.regions.support import reachable
from tests.support.waiting import wait_until

DEADLINE = 60.0  # a safety net for a loaded machine, never what the test checks
BUDGET = "budget.acme.sessions"


def admin(method: str, url: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, url + path, headers=ADMIN, timeout=DEADLINE, **kwargs)


def in_use(url: str) -> Any:
    """What `GET /capacity` (`voicefleet capacity`'s IN USE) shows the key used of its budget there."""
    return admin("GET", url, "/capacity").json()["values"].get(BUDGET, {}).get("in_use")


def start(url: str, secret: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{url}/start?wait=started", json={"body": {}, **body}, timeout=DEADLINE,
                      headers={"Authorization": f"Bearer {secret}"})


def logs(regions: dict[str, Region]) -> str:
    return "\n".join(f"--- {r.url}\n{p.log()[-3000:]}" for r in regions.values() for p in r.replicas)


def test_a_budget_of_one_session_at_once_holds_across_two_regions(tmp_path: Path) -> None:
    with stored_regions(tmp_path, ("eu", "us")) as (regions, _stack):
        eu, us = regions["eu"].url, regions["us"].url
        wait_until(lambda: reachable(regions["eu"].replicas[0], "us") and reachable(regions["us"].replicas[0], "eu"),
                   "each region reaches the other", timeout=DEADLINE)
        made = admin("POST", eu, "/keys", json={"name": "acme"})
        assert made.status_code == 201, made.text
        secret = made.json()["secret"]
        assert admin("PATCH", eu, "/capacity", json={BUDGET: 1}).status_code == 200
        wait_until(lambda: in_use(us) == 0, "the budget applied at us", timeout=DEADLINE, interval=0.1,
                   detail=lambda: logs(regions))

        first = start(eu, secret)
        assert first.status_code == 201 and first.json()["region"] == "eu", first.text
        # us shows the deployment's use once it has read eu's state (twice a second).
        wait_until(lambda: in_use(us) == 1, "eu's session in us's IN USE", timeout=DEADLINE, interval=0.1,
                   detail=lambda: logs(regions))
        for refused in (start(us, secret), start(eu, secret, region="us")):
            assert refused.status_code == 429, refused.text
            error = refused.json()["error"]
            assert error["code"] == "over_budget" and error["used"] == 1 and error["limit"] == 1, error
            assert error["used_in_other_regions"] == 1, error
            assert "1 of 1 sessions at once used across the regions" in error["message"], error

        stopped = httpx.delete(f"{eu}/sessions/{first.json()['session_id']}", timeout=DEADLINE,
                               headers={"Authorization": f"Bearer {secret}"})
        assert stopped.status_code in (202, 204), stopped.text
        wait_until(lambda: in_use(us) == 0, "eu's ended session gone from us's IN USE", timeout=DEADLINE,
                   interval=0.1, detail=lambda: logs(regions))
        second = start(us, secret)
        assert second.status_code == 201 and second.json()["region"] == "us", second.text
        wait_until(lambda: in_use(eu) == 1, "us's session in eu's IN USE", timeout=DEADLINE, interval=0.1)
        again = start(eu, secret)
        assert again.status_code == 429 and again.json()["error"]["used_in_other_regions"] == 1, again.text
