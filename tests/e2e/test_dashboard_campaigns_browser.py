"""The dashboard's campaigns in headless Chromium: a real dispatcher app on a loopback port with its campaign
worker, Twilio a strict fake that leaves each call ringing. The dashboard's admin key lists every key's
campaigns with their owner key: an admin's own and a client key's, with its progress; the client key's is
stopped from the page through the confirmation step, and the dispatcher has it stopped (still the client's:
it answers the client key); its results come down as CSV read with the key, never in an address."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from dispatcher.api.auth import caller_of
from dispatcher.settings import Settings, hash_api_key
from tests.e2e.conftest import SPEECH
from tests.fakes.server import serve
from tests.fakes.twilio_outbound import FakeTwilioCalls
from tests.support.browser import Browser, browser_mic, chromium_path
from tests.support.campaign_server import campaigns_served
from tests.support.http_client import api_client

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]

ADMIN_KEY = "vf-admin-campaigns-5b7e2c9d04a1"
CLIENT_KEY = "vf-client-campaigns-8e1f3a6c27d0"
FROM = "+14155550199"
NUMBERS = ["+14155550101", "+14155550102", "+14155550103"]
ADMIN_CALLER = caller_of(b"admin:" + hash_api_key(ADMIN_KEY)).id  # an admin key has no name: its id is named
ARMED = "!document.querySelector('#admin-confirm .confirm-yes').disabled"


@pytest.fixture
def twilio() -> Iterator[FakeTwilioCalls]:
    with serve(FakeTwilioCalls(create_per_second=50)) as fake:
        yield fake


@pytest.fixture
async def base(twilio: FakeTwilioCalls) -> AsyncIterator[str]:
    keys = Settings.from_env({"DISPATCHER_API_KEYS": f"client:{CLIENT_KEY}", "DISPATCHER_ADMIN_KEYS": ADMIN_KEY})
    async with campaigns_served(twilio, FROM, keys, callers=f"client,{ADMIN_CALLER}") as url:
        yield url


def _row(campaign_id: str) -> str:
    return f"document.querySelector({json.dumps(f'#campaign-list tr[data-campaign-id={json.dumps(campaign_id)}]')})"


async def _created(api: httpx.AsyncClient, key: str, name: str) -> str:
    made = await api.post("/campaigns", headers={"Authorization": f"Bearer {key}"},
                          json={"rows": [{"to": n} for n in NUMBERS], "from": FROM, "carrier": "twilio", "name": name})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def test_a_campaign_is_listed_stopped_from_the_page_and_its_results_downloaded(
        base: str, twilio: FakeTwilioCalls, tmp_path: Path) -> None:
    async with api_client(base_url=base, timeout=30) as api:
        mine = await _created(api, ADMIN_KEY, "<b>renewals</b>")
        theirs = await _created(api, CLIENT_KEY, "the client's")
        mic = browser_mic(SPEECH, tmp_path / "mic48k.wav")
        async with Browser(base + "/dashboard", mic, tmp_path / "profile") as page:
            assert await page.wait_for("window.voicefleetStatus?.state === 'needs-key'", 60)
            await page.evaluate(f"document.getElementById('admin-key').value = {json.dumps(ADMIN_KEY)};"
                                "document.getElementById('key-form').requestSubmit()")
            for campaign_id in (mine, theirs):  # concurrency 1: one call ringing for each
                placed = f"{_row(campaign_id)}?.cells[4].textContent === '1'"
                listed = await page.wait_for(f"{_row(campaign_id)}?.cells[2].textContent === 'running' && {placed}",
                                             60)
                assert listed, await page.evaluate("JSON.stringify(window.voicefleetStatus.campaigns)")
            assert await page.evaluate(f"{_row(mine)}.cells[0].textContent") == f"<b>renewals</b> ({mine})"
            assert await page.evaluate("document.querySelectorAll('#campaign-list b').length") == 0
            assert await page.evaluate(f"{_row(mine)}.cells[1].textContent") == ADMIN_CALLER  # no name: its id
            assert await page.evaluate(f"{_row(theirs)}.cells[1].textContent") == "client"  # the owner key

            await page.evaluate(f"{_row(theirs)}.querySelector('button.admin-action').click()")
            asked = await page.evaluate("document.querySelector('#admin-confirm .confirm-what').textContent")
            assert asked.startswith(f"Stop campaign {theirs}?"), asked
            assert (await api.get(f"/campaigns/{theirs}", headers={"Authorization": f"Bearer {CLIENT_KEY}"})
                    ).json()["status"] == "running"  # asked, not yet sent
            assert await page.wait_for(ARMED, 10)
            await page.evaluate("document.querySelector('#admin-confirm .confirm-yes').click()")
            said = await page.wait_for("document.getElementById('admin-outcome').textContent", 30)
            assert said == f"Campaign {theirs}: stopped.", said
            shown = (await api.get(f"/campaigns/{theirs}", headers={"Authorization": f"Bearer {CLIENT_KEY}"})).json()
            assert shown["status"] == "stopped", shown  # the client key's own campaign, stopped by the admin
            resume = f"{_row(theirs)}.querySelector('button.admin-action').textContent === 'Resume'"
            assert await page.wait_for(f"{_row(theirs)}.cells[2].textContent === 'stopped' && {resume}", 30)
            audit = (await api.get("/audit/sessions", headers={"Authorization": f"Bearer {ADMIN_KEY}"})).json()
            assert [(line["action"], line["campaign_id"]) for line in audit["lines"] if "campaign_id" in line] == [
                ("campaign.stop", theirs)]

            # The results: read with the key, handed to the browser as a file (the anchor's click is caught).
            # (the page's CSP lets it fetch no blob: URL back: the blob is caught as it is made)
            await page.evaluate("window.__downloads = []; const blobs = new Map(), made = URL.createObjectURL;"
                                " URL.createObjectURL = (blob) => {"
                                " const url = made(blob); blobs.set(url, blob); return url; };"
                                " HTMLAnchorElement.prototype.click = function () { blobs.get(this.href).text()"
                                ".then((t) => window.__downloads.push([this.download, t])); }")
            await page.evaluate(f"{_row(mine)}.querySelector('button.link').click()")
            assert await page.wait_for("window.__downloads.length === 1", 30)
            name, text = (await page.evaluate("window.__downloads"))[0]
            assert name == f"{mine}.csv"
            assert text.splitlines()[0].startswith("to,") and [line.split(",")[0] for line in text.splitlines()[1:]] \
                == NUMBERS, text
    assert not [url for url in page.requests if ADMIN_KEY in url or CLIENT_KEY in url]
    assert not [url for url in page.requests if not url.startswith((base, "data:"))], page.requests
