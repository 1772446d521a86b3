"""A time header of a few hundred digits is refused like any wrong time, never a 500.

`int()` reads 400 digits, and the float arithmetic after it raises `OverflowError`: the region
time header (on any route, since the relay checks every request that names a relaying region, no
signature needed) and Telnyx's timestamp were each an unauthenticated 500 with a traceback in the
log. Both are bounded before they are parsed (dispatcher/numbers.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from dispatcher.regions.signing import NONCE, RELAYED_BY, SENDER, SIGNATURE, TIME
from tests.dispatcher.api.test_webhooks import telnyx_headers
from tests.regions.test_region_peers import region_env
from tests.support.phone_dispatcher import Phone, phone_dispatcher
from tests.support.ports import free_port
from tests.support.processes import run_dispatcher

HUGE = "9" * 400


@pytest.fixture
async def keyed() -> AsyncIterator[Phone]:
    async for phone in phone_dispatcher(keyed=True):
        yield phone


async def test_a_400_digit_telnyx_timestamp_is_refused_as_forged(keyed: Phone) -> None:
    body = urlencode({"CallSid": "v3:huge", "From": "+14155550100"}).encode()
    headers = {**telnyx_headers(keyed, body, int(time.time())), "telnyx-timestamp": HUGE}
    answer = await keyed.api.post("/phone/telnyx", content=body, headers=headers)
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "signature_forged", answer.text


def test_a_400_digit_region_time_on_any_route_is_a_401_and_no_traceback(tmp_path: Path) -> None:
    urls = {"eu": f"http://127.0.0.1:{free_port()}", "us": f"http://127.0.0.1:{free_port()}"}  # us: never asked
    with run_dispatcher(tmp_path, region_env("eu", urls), port=int(urls["eu"].rsplit(":", 1)[1])) as eu:
        forged = {RELAYED_BY: "us", SENDER: "us", TIME: HUGE, NONCE: "0" * 32, SIGNATURE: "v1=" + "0" * 64}
        answers = [httpx.get(f"{eu.base_url}{path}", headers=forged, timeout=10) for path in ("/healthz", "/start")]
        for answer in answers:
            assert answer.status_code == 401, answer.text
            assert answer.json()["error"]["code"] == "region_unauthenticated"
            assert "Voicefleet-Region-Time is not a time" in answer.json()["error"]["message"]
        assert "OverflowError" not in eu.log() and "Traceback" not in eu.log()
