"""A phone start pinned to another region is relayed there as it came, its `release` too, and that
region, whose list of releases is the one the call will run on, says whether the release is known:
as for a web start, the region it arrived at (here one listing no such release) does not decide."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.regions.support import regions
from tests.regions.test_phone_across_regions import TWILIO_TOKEN, ws_base
from tests.regions.test_spill_over import AUTH
from tests.support.releases import release_env


def test_a_phone_start_pinned_to_a_region_is_refused_or_minted_by_that_regions_releases(tmp_path: Path) -> None:
    common = {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN}
    with regions(tmp_path, ("eu", "us"), {"eu": common, "us": {**common, **release_env(tmp_path)}}) as (urls, _):
        body = {"transport": "twilio", "region": "us", "release": "next", "eval": True}
        for _ in range(100):  # until eu's polling has found us
            answer = httpx.post(f"{urls['eu']}/start", json=body, headers=AUTH, timeout=10)
            if answer.status_code != 503:
                break
            time.sleep(0.1)
        assert answer.status_code == 201, answer.text  # us lists `next`: its token, though eu lists none
        assert answer.json()["wsUrl"].startswith(ws_base(urls["us"])), answer.json()  # a call opened at us
        unknown = httpx.post(f"{urls['eu']}/start", json={**body, "release": "nope"}, headers=AUTH, timeout=10)
        assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_release", unknown.text
