"""`GET /sessions` with two regions as real processes: a cursor no region made (a lone surrogate
escaped, its raw bytes, UTF-16, a control character, an overlong value) is `422` naming the cursor,
never a 500 when the peer's part is sent on; a well-made one still lists."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx

from tests.dispatcher.conftest import API_KEY
from tests.regions.support import ADMIN_KEY, regions
from tests.support.waiting import wait_until

CLIENT, ADMIN = {"Authorization": f"Bearer {API_KEY}"}, {"Authorization": f"Bearer {ADMIN_KEY}"}
CRAFTED = {
    "an escaped lone surrogate for the peer": b'{"eu":"","us":"\\ud800"}',
    "a surrogate's raw bytes for the peer": b'{"eu":"","us":"\xed\xa0\x80"}',
    "an escaped lone surrogate here": b'{"eu":"\\ud800","us":""}',
    "UTF-16": json.dumps({"eu": "", "us": "\ud800"}, ensure_ascii=False).encode("utf-16-le", "surrogatepass"),
    "a newline, a C1 and an RLO": json.dumps({"eu": "", "us": "x\n\x9b\u202e"}).encode(),
    "an overlong value": json.dumps({"eu": "", "us": "a" * 1000}).encode(),
}


def regional(raw: bytes) -> str:
    return "r1." + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_cursor_no_region_made_is_422_naming_the_cursor_for_a_client_and_an_admin(tmp_path: Path) -> None:
    with regions(tmp_path, ("eu", "us")) as (urls, _):
        def us_answers() -> bool:
            view = httpx.get(f"{urls['eu']}/healthz", headers=ADMIN, timeout=10).json()
            return bool(view.get("regions", {}).get("us", {}).get("reachable"))

        wait_until(us_answers, "eu sees us answer", timeout=90)
        for label, raw in CRAFTED.items():
            for headers in (CLIENT, ADMIN):
                answer = httpx.get(f"{urls['eu']}/sessions", params={"cursor": regional(raw)}, headers=headers,
                                   timeout=60)
                assert answer.status_code == 422, (label, answer.status_code, answer.text)
                assert answer.json()["error"]["message"].startswith("cursor:"), (label, answer.text)
        first = httpx.get(f"{urls['eu']}/sessions", params={"cursor": regional(b'{"eu":"","us":""}')},
                          headers=CLIENT, timeout=60)
        assert first.status_code == 200 and first.json()["unreachable_regions"] == [], first.text
