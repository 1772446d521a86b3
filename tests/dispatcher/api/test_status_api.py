"""GET /status, GET /status/history and the /dashboard page, through the app with local bots (the
stand-in): behind the admin key, counting a running session under its release, a start and a refusal
by its code, priced, and the page served only where it is enabled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from dispatcher.api.dashboard_setting import dashboard_enabled
from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings, SettingsError, hash_api_key
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.support.dispatcher_server import serving
from tests.support.waiting import until

CLIENT_KEY, ADMIN_KEY = "client-key-0123456789", "admin-key-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CLIENT = {"Authorization": f"Bearer {CLIENT_KEY}"}


@asynccontextmanager
async def dispatcher(tmp_path: Path, *, max_sessions: int = 10, **env: str) -> AsyncIterator[httpx.AsyncClient]:
    tmp_path.mkdir(exist_ok=True)
    for name in ("bot.py", "bot_v2.py"):
        (tmp_path / name).write_text("async def bot(runner_args): ...\n")
    env = {"BOT_RELEASES": f"stable={tmp_path}/bot.py,next={tmp_path}/bot_v2.py", "RESERVE_MAX_IDLE": "0", **env}
    settings = replace(Settings(api_key_hashes=frozenset({hash_api_key(CLIENT_KEY)}),
                                admin_key_hashes=frozenset({hash_api_key(ADMIN_KEY)})),
                       max_concurrent_sessions=max_sessions)
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=2.0, bot_env=STANDIN_ENV))
    app = create_app(settings, env=env, machines=machines, rooms=None)
    async with serving(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                               base_url="http://127.0.0.1") as client:
        try:
            yield client
        finally:
            await app.state.voicefleet.aclose()


async def status_when(api: httpx.AsyncClient, holds: Any, what: str) -> dict[str, Any]:
    """The first GET /status answer for which `holds(body)` (answers are reused for 2 s)."""
    async def answer() -> dict[str, Any] | None:
        body = (await api.get("/status", headers=ADMIN)).json()
        return body if holds(body) else None

    return await until(answer, what, interval=0.25)


@pytest.mark.parametrize("path", ["/status", "/status/history"])
async def test_only_an_admin_key_reads_the_status(tmp_path: Path, path: str) -> None:
    async with dispatcher(tmp_path) as api:
        missing = await api.get(path)
        forged = await api.get(path, headers={"Authorization": "Bearer forged-key-0123456789"})
        as_client = await api.get(path, headers=CLIENT)
        as_admin = await api.get(path, headers=ADMIN)
    assert (missing.status_code, forged.status_code, as_client.status_code) == (401, 401, 403)
    assert as_client.json()["error"] == {
        "code": "admin_key_required",
        "message": "a client API key cannot read the deployment's status: use one of DISPATCHER_ADMIN_KEYS"}
    assert as_admin.status_code == 200, as_admin.text


async def test_a_running_session_is_counted_under_its_release_with_its_start_and_its_cost(tmp_path: Path) -> None:
    # A price for a local process (0 otherwise): the cost is the machines running × it.
    async with dispatcher(tmp_path, RESERVE_HOT_DOLLARS_PER_MONTH="73") as api:
        keyed = {**CLIENT, "Idempotency-Key": "status-call-1"}
        started = await api.post("/start", json={"release": "next"}, headers=keyed)
        replayed = await api.post("/start", json={"release": "next"}, headers=keyed)  # the same session: no start
        assert (started.status_code, replayed.status_code) == (201, 200), replayed.text
        body = await status_when(api, lambda b: b["sessions"]["running"] == 1, "the session counted")
        history = (await api.get("/status/history", headers=ADMIN)).json()
    assert body["sessions"]["by_release"] == {"next": 1}
    assert body["sessions"]["by_region"] == {"default": 1}
    assert set(body["sessions"]["by_status"]) <= {"starting", "started", "joined"}
    assert body["starts"]["1m"] == {"starts": 1, "refused": 0, "refusals": {}, "cold": {}}
    assert body["scope"]["starts"] == "replica" and body["scope"]["sessions"] == "region"
    assert body["reserve"]["enabled"] is False and body["reserve"]["total"] == 0
    assert body["cost"]["running_machines"] == 1
    assert body["cost"]["dollars_per_hour"] == pytest.approx(0.1)  # $73 a month is $0.10 an hour
    assert "note" not in body["cost"] or body["cost"]["note"] is None
    assert [r["name"] for r in body["regions"]] == ["default"]
    assert sum(sample["starts"] for sample in history["samples"]) == 1
    assert history["samples"][-1]["sessions"] == 1


async def test_an_evals_session_is_counted_apart_from_callers_sessions(tmp_path: Path) -> None:
    async with dispatcher(tmp_path) as api:
        evaluated = await api.post("/start", json={"body": {}, "eval": True, "release": "next"}, headers=CLIENT)
        assert evaluated.status_code == 201, evaluated.text
        alone = await status_when(api, lambda b: b["sessions"]["evals"]["running"] == 1, "the eval counted apart")
        plain = await api.post("/start", json={"body": {}}, headers=CLIENT)
        assert plain.status_code == 201, plain.text
        both = await status_when(api, lambda b: b["sessions"]["running"] == 1, "the caller's session counted")
        metrics = (await api.get("/metrics", headers=ADMIN)).text
    assert (alone["sessions"]["running"], alone["sessions"]["by_release"]) == (0, {})
    assert alone["starts"]["1m"]["starts"] == 0 and both["starts"]["1m"]["starts"] == 1  # callers' load only
    # /metrics the same: callers' starts and sessions, and the evals' in their own series.
    for line in ('voicefleet_session_starts_total{outcome="created",provider="local",release="stable"} 1.0',
                 'voicefleet_eval_session_starts_total{outcome="created",provider="local",release="next"} 1.0',
                 'voicefleet_active_sessions{provider="local",release="stable"} 1.0',
                 'voicefleet_active_sessions{provider="local",release="next"} 0.0',
                 'voicefleet_eval_active_sessions{provider="local",release="next"} 1.0'):
        assert line in metrics, (line, metrics)
    assert 'voicefleet_session_starts_total{outcome="created",provider="local",release="next"}' not in metrics
    assert alone["sessions"]["evals"] == {"running": 1, "by_release": {"next": 1}}
    assert both["sessions"]["by_release"] == {"stable": 1} and both["sessions"]["evals"]["running"] == 1
    assert both["cost"]["running_machines"] == 2  # the bill: every machine that runs, an eval's too


async def test_a_refused_start_is_counted_by_its_code(tmp_path: Path) -> None:
    async with dispatcher(tmp_path, max_sessions=1) as api:
        first = await api.post("/start", json={}, headers=CLIENT)
        second = await api.post("/start", json={}, headers=CLIENT)
        body = (await api.get("/status", headers=ADMIN)).json()
        history = (await api.get("/status/history", headers=ADMIN)).json()
    assert (first.status_code, second.status_code) == (201, 429), second.text
    code = second.json()["error"]["code"]
    assert body["starts"]["5m"] == {"starts": 1, "refused": 1, "refusals": {code: 1}, "cold": {}}
    assert sum(sample["refused"] for sample in history["samples"]) == 1


async def test_a_local_dispatcher_costs_nothing_and_says_so(tmp_path: Path) -> None:
    async with dispatcher(tmp_path) as api:
        body = (await api.get("/status", headers=ADMIN)).json()
    assert body["cost"]["dollars_per_hour"] == 0
    assert body["cost"]["note"] == "local processes cost nothing"


async def test_the_page_is_served_locally_with_its_assets_and_not_when_turned_off(tmp_path: Path) -> None:
    async with dispatcher(tmp_path / "on") as api:
        page = await api.get("/dashboard")
        script = await api.get("/dashboard/dashboard.js")
        style = await api.get("/dashboard/dashboard.css")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    # Never framed by another page (its admin buttons clicked through a decoy), never naming itself to another.
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert (page.headers["x-frame-options"], page.headers["referrer-policy"]) == ("DENY", "no-referrer")
    assert '<script src="/dashboard/dashboard.js">' in page.text
    assert (script.status_code, style.status_code) == (200, 200)
    assert script.headers["content-type"].startswith("text/javascript") and "uPlot" in script.text
    async with dispatcher(tmp_path / "off", DASHBOARD_ENABLED="0") as api:
        assert (await api.get("/dashboard")).status_code == 404
        assert (await api.get("/dashboard/dashboard.js")).status_code == 404
        assert (await api.get("/status", headers=ADMIN)).status_code == 200  # the data, without the page


def test_the_page_is_off_in_the_cloud_unless_enabled_and_a_bad_value_is_named() -> None:
    assert dashboard_enabled({}, local=True) is True
    assert dashboard_enabled({}, local=False) is False
    assert dashboard_enabled({"DASHBOARD_ENABLED": "1"}, local=False) is True
    assert dashboard_enabled({"DASHBOARD_ENABLED": "0"}, local=True) is False
    assert dashboard_enabled({"DASHBOARD_ENABLED": "  "}, local=True) is True  # blank is unset
    assert dashboard_enabled({"DASHBOARD_ENABLED": " Yes "}, local=False) is True  # a boolean's words
    assert dashboard_enabled({"DASHBOARD_ENABLED": "off"}, local=True) is False
    with pytest.raises(SettingsError, match="^DASHBOARD_ENABLED='maybe' is not a boolean: write 1/0, true/false"):
        dashboard_enabled({"DASHBOARD_ENABLED": "maybe"}, local=False)
