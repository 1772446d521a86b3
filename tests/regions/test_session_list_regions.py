"""`GET /sessions` with two regions as real processes on loopback: either region lists the key's
sessions of both, newest first, paged by one cursor; a region that is down is named in
`unreachable_regions` and the other's sessions still listed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.dispatcher.conftest import API_KEY
from tests.regions.support import regions
from tests.support.processes import terminate
from tests.support.waiting import wait_until

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def listing(base_url: str, query: str = "") -> dict[str, Any]:
    answer = httpx.get(f"{base_url}/sessions{query}", headers=AUTH, timeout=60)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_either_region_lists_both_regions_sessions_and_names_one_that_is_down(tmp_path: Path) -> None:
    with regions(tmp_path, ("eu", "us")) as (urls, running):
        started = []
        for region in ("eu", "us", "eu"):
            answer = httpx.post(f"{urls[region]}/start", json={}, headers=AUTH, timeout=60)
            assert answer.status_code == 201, answer.text
            started.append((answer.json()["session_id"], region))
        newest_first = [session_id for session_id, _ in started[::-1]]
        for region in ("eu", "us"):
            body = wait_until(lambda r=region: (b := listing(urls[r]))["sessions"] and len(b["sessions"]) == 3 and b,
                              f"three sessions listed at {region}", timeout=60)
            assert [s["session_id"] for s in body["sessions"]] == newest_first
            assert [s["region"] for s in body["sessions"]] == ["eu", "us", "eu"]
            assert body["unreachable_regions"] == [] and body["next_cursor"] is None and body["region"] == region
        seen, query = [], "?limit=1"
        for _ in range(6):
            page = listing(urls["us"], query)
            seen += [s["session_id"] for s in page["sessions"]]
            if page["next_cursor"] is None:
                break
            query = f"?limit=1&cursor={page['next_cursor']}"
        assert seen == newest_first
        bad = httpx.get(f"{urls['eu']}/sessions?cursor=v1-not-a-cursor", headers=AUTH, timeout=60)
        assert bad.status_code == 422 and "next_cursor" in bad.json()["error"]["message"]
        terminate(running["us"].process)
        alone = listing(urls["eu"])
        assert [s["session_id"] for s in alone["sessions"]] == [started[2][0], started[0][0]]
        assert [u["region"] for u in alone["unreachable_regions"]] == ["us"] and alone["next_cursor"] is None
