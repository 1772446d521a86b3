"""`GET /usage` and `voicefleet usage` with two regions as real processes on loopback, each with its
own rollups: either region answers one total, both regions' sessions counted once; a region that is
down is named in `unreachable_regions` and left out of the sums, never silently."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from tests.dispatcher.conftest import API_KEY
from tests.regions.support import regions
from tests.support.processes import terminate
from tests.support.waiting import wait_until
from voicefleet.main import voicefleet

AUTH = {"Authorization": f"Bearer {API_KEY}"}
ADMIN_KEY = "usage-regions-admin-key-0123456789"


def usage(base_url: str, query: str = "") -> dict[str, Any]:
    answer = httpx.get(f"{base_url}/usage{query}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_either_region_answers_one_usage_total(tmp_path: Path) -> None:
    admin = {"DISPATCHER_ADMIN_KEYS": ADMIN_KEY}
    with regions(tmp_path, ("eu", "us"), extra={"eu": admin, "us": admin}) as (urls, running):
        places = ("eu", "us", "eu")
        with ThreadPoolExecutor(len(places)) as pool:  # the three sessions at once, each its own start
            answers = list(pool.map(lambda region: httpx.post(f"{urls[region]}/start?wait=started", json={},
                                                              headers=AUTH, timeout=60), places))
        for started in answers:
            assert started.status_code == 201, started.text
        time.sleep(1.0)  # a second each, so their minutes (shown to the hundredth) are not 0.00
        for region, started in zip(places, answers, strict=True):
            stopped = httpx.delete(f"{urls[region]}/sessions/{started.json()['session_id']}", headers=AUTH,
                                   timeout=60)
            assert stopped.status_code in (202, 204), stopped.text
        for region in ("eu", "us"):
            body = wait_until(lambda r=region: (b := usage(urls[r]))["totals"].get("sessions") == 3 and b,
                              f"three sessions in the usage at {region}", timeout=60)
            assert body["regions"] == ["eu", "us"] and body["unreachable_regions"] == []
            [row] = body["rows"]  # one key, its sessions of both regions in one row
            assert row["sessions"] == 3 and row["minutes"] == body["totals"]["minutes"] > 0
        by_day = usage(urls["us"], "?by=day")
        assert [row["sessions"] for row in by_day["rows"]] == [3]
        shown = CliRunner().invoke(voicefleet, ["usage", "--csv"], prog_name="voicefleet",
                                   env={"VOICEFLEET_URL": urls["eu"], "VOICEFLEET_ADMIN_KEY": ADMIN_KEY})
        assert shown.exit_code == 0, shown.output
        assert shown.output.splitlines()[-1].startswith("TOTAL,3,")
        terminate(running["us"].process)
        alone = usage(urls["eu"])
        assert alone["regions"] == ["eu"] and [u["region"] for u in alone["unreachable_regions"]] == ["us"]
        assert 0 < alone["totals"]["sessions"] < 3  # eu's own, said to leave us out
