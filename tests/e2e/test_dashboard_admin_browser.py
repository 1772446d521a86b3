"""The dashboard's admin actions in headless Chromium, against a real local dispatcher with keys and a
real bot: an admin opens a client's live session (its cost so far), stops it through the confirmation
step, and the session ends, on the audit trail under the admin's id; then rolls the canary back the
same way. A client key's page shows no action, and the same requests sent from the page with it are
refused as the API refuses them; from another origin they are refused even with the admin key."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dispatcher.settings import hash_api_key
from tests.e2e.conftest import SPEECH
from tests.e2e.recording_checks import timeline_event
from tests.support.browser import Browser, browser_mic, chromium_path
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]

ADMIN_KEY = "vf-admin-actions-8d2f0b6c41e7"
CLIENT_KEY = "vf-client-actions-3a9e5c0d72b1"
OTHER_KEY = "vf-client-actions-other-61f4a8e0c2d9"
PARROT = Path(__file__).parents[2] / "examples" / "parrot"
ADMIN_ID = "admin-" + hashlib.sha256(b"admin:" + hash_api_key(ADMIN_KEY)).hexdigest()[:12]  # admin_auth.admin_key


@pytest.fixture(scope="module")
def keyed_dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    folder = tmp_path_factory.mktemp("dispatcher")
    canary = folder / "next"
    shutil.copytree(PARROT, canary, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    env = {
        "DISPATCHER_API_KEYS": f"actions:{CLIENT_KEY},other:{OTHER_KEY}",
        "DISPATCHER_ADMIN_KEYS": ADMIN_KEY,
        "BOT_RELEASES": f"stable={PARROT / 'bot.py'},next={canary / 'bot.py'}",
        "RELEASE_WEIGHTS": "stable=90,next=10",
        "RESERVE_MAX_IDLE": "0",
    }
    with run_dispatcher(folder, env) as running:
        yield running


ARMED = "!document.querySelector('#admin-confirm .confirm-yes').disabled"  # a moment after it is asked


def _row(session_id: str) -> str:
    """A selector (as JS source) for the session's open button in the list."""
    return json.dumps(f"#session-list tr[data-session-id={json.dumps(session_id)}] button")


def _stop_of(session_id: str) -> str:
    """True in the page once the session is the one open and its Stop session button is drawn."""
    return (
        f"document.getElementById('detail-id').textContent === {json.dumps(session_id)}"
        " && !!document.querySelector('#detail-actions button.admin-action')"
    )


def _submit(key: str) -> str:
    return (
        f"sessionStorage.clear(); document.getElementById('admin-key').value = {json.dumps(key)};"
        "document.getElementById('key-form').requestSubmit()"
    )


def _fetch(method: str, path: str, key: str) -> str:
    """The page's own request, with `key`: same origin, so the cross-site guard lets it through."""
    return (
        f"fetch({json.dumps(path)}, {{method: {json.dumps(method)}, headers: {{Authorization: "
        f"'Bearer ' + {json.dumps(key)}}}}}).then(async (r) => [r.status, await r.text()])"
    )


async def _live_session(api: httpx.AsyncClient) -> str:
    started = await api.post("/start", json={"body": {}})
    assert started.status_code == 201, started.text
    session_id = str(started.json()["session_id"])
    await timeline_event(api, session_id, "ready")
    return session_id


async def _status(api: httpx.AsyncClient, session_id: str, wanted: str, polls: int = 300) -> str:
    status = ""
    for _ in range(polls):
        status = (await api.get(f"/sessions/{session_id}")).json().get("status", "")
        if status == wanted:
            break
        await asyncio.sleep(0.1)
    return status


async def test_an_admin_stops_a_live_session_and_rolls_back_through_the_confirmation_a_client_cannot(
    keyed_dispatcher: DispatcherProcess, tmp_path: Path
) -> None:
    base = keyed_dispatcher.base_url
    mic = browser_mic(SPEECH, tmp_path / "mic48k.wav")
    async with api_client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as api:
        session_id = await _live_session(api)
        bystander = await _live_session(api)
        async with Browser(base + "/dashboard", mic, tmp_path / "profile") as page:
            assert await page.wait_for("window.voicefleetStatus?.state === 'needs-key'", 60)

            # A client key: the page asks again and shows no action; the requests it could forge are refused.
            await page.evaluate(_submit(OTHER_KEY))
            refused = "document.getElementById('problem').textContent.includes('admin_key_required')"
            assert await page.wait_for(refused, 30)
            assert await page.evaluate("document.querySelectorAll('button.admin-action, .confirm-yes').length") == 0
            assert await page.evaluate("document.getElementById('board').hidden")
            stop = await page.evaluate(_fetch("DELETE", f"/sessions/{session_id}", OTHER_KEY))
            rollback = await page.evaluate(_fetch("POST", "/releases/rollback", OTHER_KEY))
            assert stop[0] == 404, stop  # another key's session is one it cannot see
            assert rollback[0] == 403 and "admin_key_required" in rollback[1], rollback
            assert await _status(api, session_id, "started", polls=1) in ("started", "joined")

            # The admin: the session's cost so far, then its stop, asked first.
            await page.evaluate(_submit(ADMIN_KEY))
            assert await page.wait_for(f"!!document.querySelector({_row(session_id)})", 90)
            assert await page.wait_for(f"!!document.querySelector({_row(bystander)})", 30)
            # A stop asked about one session is withdrawn when another is opened: never confirmed under it.
            await page.evaluate(f"document.querySelector({_row(bystander)}).click()")
            assert await page.wait_for(_stop_of(bystander), 30)
            await page.evaluate("document.querySelector('#detail-actions button.admin-action').click()")
            await page.evaluate(f"document.querySelector({_row(session_id)}).click()")
            assert await page.evaluate("document.getElementById('admin-confirm').hidden")
            said = await page.evaluate("document.getElementById('admin-outcome').textContent")
            assert said == f"Cancelled (session {session_id} was opened): nothing was changed.", said
            assert await page.wait_for(_stop_of(session_id), 30)
            cost = await page.evaluate("document.getElementById('detail-cost').innerText")
            assert "machine" in cost and "estimated, so far" in cost, cost
            assert await page.evaluate("document.getElementById('admin-confirm').hidden")
            await page.evaluate("document.querySelector('#detail-actions button.admin-action').click()")
            asked = await page.evaluate("document.querySelector('#admin-confirm .confirm-what').textContent")
            assert f"Stop session {session_id}?" in asked and "audit trail" in asked, asked
            assert await _status(api, session_id, "ended", polls=1) != "ended"  # asked, not yet sent
            assert await page.wait_for(ARMED, 10)
            await page.evaluate("document.querySelector('#admin-confirm .confirm-yes').click()")
            said = await page.wait_for("document.getElementById('admin-outcome').textContent", 30)
            assert said and said.startswith(f"Session {session_id}: stop"), said
            assert await _status(api, session_id, "ended") == "ended", keyed_dispatcher.log()[-3000:]
            assert await page.wait_for("document.getElementById('detail-status').textContent.startsWith('ended')", 30)
            assert await page.evaluate("document.querySelectorAll('#detail-actions button').length") == 0

            # The canary rolled back from its row, asked first.
            canary_row = (
                "[...document.querySelectorAll('#releases-table tbody tr')]"
                ".find((r) => r.cells[0].textContent === 'next')"
            )
            assert await page.wait_for(f"!!{canary_row}?.querySelector('button.admin-action')", 30)
            await page.evaluate(f"{canary_row}.querySelector('button.admin-action').click()")
            asked = await page.evaluate("document.querySelector('#admin-confirm .confirm-what').textContent")
            assert "stable release stable (100 %): next from 10 % to 0 %" in asked, asked
            assert await page.wait_for(ARMED, 10)
            await page.evaluate("document.querySelector('#admin-confirm .confirm-yes').click()")
            said = await page.wait_for("document.getElementById('admin-outcome').textContent", 30)
            assert said and said.startswith("Rolled back: rolled back to stable"), said
            assert ADMIN_KEY not in await page.evaluate("document.documentElement.outerHTML")

        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        audit = (await api.get("/audit/sessions", headers=admin)).json()["lines"]
        stops = [line for line in audit if line["action"] == "session.stop" and line["session_id"] == session_id]
        assert [line["by"] for line in stops] == [ADMIN_ID], audit
        changes = (await api.get("/releases/history", headers=admin)).json()["changes"]
        weights = {r["name"]: r["weight"] for r in (await api.get("/releases", headers=admin)).json()["releases"]}
        assert await _status(api, bystander, "ended", polls=1) != "ended"  # its withdrawn stop was never sent
        assert (await api.delete(f"/sessions/{bystander}")).status_code in (202, 204)
    assert weights == {"stable": 100, "next": 0}
    assert changes[0]["by"] == ADMIN_ID, changes[0]
    assert not [url for url in page.requests if ADMIN_KEY in url or CLIENT_KEY in url or OTHER_KEY in url]
    assert not [url for url in page.requests if not url.startswith((base, "data:"))], page.requests


async def test_the_admin_actions_from_another_origin_are_refused_even_with_the_admin_key(
    keyed_dispatcher: DispatcherProcess,
) -> None:
    base = keyed_dispatcher.base_url
    async with api_client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as api:
        session_id = await _live_session(api)
        forged = {"Authorization": f"Bearer {ADMIN_KEY}", "Origin": "http://attacker.localhost:8000"}
        stop = await api.delete(f"/sessions/{session_id}", headers=forged)
        rollback = await api.post("/releases/rollback", headers=forged)
        site = await api.post(
            "/releases/rollback", headers={"Authorization": f"Bearer {ADMIN_KEY}", "Sec-Fetch-Site": "cross-site"}
        )
        assert [stop.status_code, rollback.status_code, site.status_code] == [403, 403, 403]
        assert stop.json()["error"]["code"] == "origin_not_allowed", stop.text
        assert await _status(api, session_id, "ended", polls=1) != "ended"
        own = await api.delete(
            f"/sessions/{session_id}", headers={"Authorization": f"Bearer {ADMIN_KEY}", "Origin": base}
        )
        assert own.status_code in (202, 204), own.text
        assert await _status(api, session_id, "ended") == "ended"
