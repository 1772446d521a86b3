"""GET/DELETE /sessions/{id}, offer proxying and metrics, with real (stand-in) bot processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.processes import pid_alive


async def poll_status(api, session_id: str, want: str, timeout: float = 90.0) -> dict:
    """The session once it reads `want`; a loaded machine may take its stand-in bot many seconds
    to start, dial and exit, so the deadline is generous and its failure says what was seen."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        session = (await api.get(f"/sessions/{session_id}")).json()
        if session["status"] == want:
            return session
        assert asyncio.get_running_loop().time() < deadline, f"not {want} within {timeout:.0f} s: {session}"
        await asyncio.sleep(0.05)


async def start(api) -> dict:
    response = await api.post("/start?wait=started", json={})
    assert response.status_code == 201, response.text
    return response.json()


def bot_pid(api, session_id: str) -> int:
    return api._transport.app.state.voicefleet.machines._bots[session_id].process.pid


async def test_get_reports_a_started_session(api):
    session = await start(api)
    got = (await api.get(f"/sessions/{session['session_id']}")).json()
    assert got["status"] == "started"
    assert got["offer_url"].endswith("/api/offer")


async def test_get_reports_joined_once_the_bot_has_a_peer(api, monkeypatch):
    monkeypatch.setenv("STANDIN_CONNECT", "1")
    session = await start(api)
    assert (await poll_status(api, session["session_id"], "joined"))["status"] == "joined"


async def test_delete_stops_the_bot_process(api):
    session = await start(api)
    pid = bot_pid(api, session["session_id"])
    assert pid_alive(pid)
    assert (await api.delete(f"/sessions/{session['session_id']}")).status_code == 204
    assert not pid_alive(pid)
    got = (await api.get(f"/sessions/{session['session_id']}")).json()
    assert (got["status"], got["detail"]) == ("ended", "stopped")
    assert "offer_url" not in got  # fields that do not apply are left out, never null


async def test_delete_twice_is_harmless(api):
    session = await start(api)
    await api.delete(f"/sessions/{session['session_id']}")
    assert (await api.delete(f"/sessions/{session['session_id']}")).status_code == 204


async def test_a_bot_ignoring_sigterm_is_killed_after_the_grace_period(make_api, standin_mode):
    standin_mode("ignore-sigterm")
    async with make_api(grace=0.5) as api:
        session = await start(api)
        pid = bot_pid(api, session["session_id"])
        assert (await api.delete(f"/sessions/{session['session_id']}")).status_code == 204
        assert not pid_alive(pid)


async def test_a_bot_that_crashes_is_reported_failed(api, standin_mode):
    standin_mode("crash")
    session = (await api.post("/start", json={})).json()
    got = await poll_status(api, session["session_id"], "failed")
    assert (got["status"], got["detail"]) == ("failed", "exit code 3")


async def test_a_bot_that_said_it_failed_is_failed_even_when_a_stop_came_before_its_exit(api, standin_mode):
    """A phone call's bot whose bot() raised ends the call; the call's end stops the machine before the
    bot has exited. Its own word that it failed stands, with its reason (not "ended: stopped")."""
    standin_mode("failed-then-stopped")
    session = (await api.post("/start?wait=started", json={})).json()
    assert (await api.delete(f"/sessions/{session['session_id']}")).status_code in (202, 204)
    got = await poll_status(api, session["session_id"], "failed")
    assert got["status"] == "failed" and "missing required parameters" in got["detail"]


async def test_waiting_for_a_bot_that_fails_to_start_is_an_error_with_the_reason(api, standin_mode):
    standin_mode("fail-start")
    response = await api.post("/start?wait=started", json={})
    assert response.status_code == 502, response.text  # never a 2xx for a session that failed
    error = response.json()["error"]
    assert error["code"] == "start_failed" and "exit code 2: stand-in refused" in error["message"]
    got = (await api.get(f"/sessions/{error['session_id']}")).json()
    assert (got["status"], got["detail"]) == ("failed", "exit code 2: stand-in refused")


async def test_the_bots_own_reason_for_failing_reaches_the_api(make_api, monkeypatch):
    """The real bot (not the stand-in) with a broken bot file (BOT_FILE): it cannot start, and says
    why on its event stream; the dispatcher puts that, the file and the exception, in the failed
    start's answer and in `detail`."""
    from dispatcher.machines.local.provider import LocalSettings

    broken = Path(__file__).resolve().parents[2] / "bots" / "broken_missing_module.py"
    monkeypatch.setenv("BOT_FILE", str(broken))
    context = make_api()
    context.machines._settings = LocalSettings()  # `python -m bot`
    async with context as api:
        response = await api.post("/start?wait=started", json={})
        assert response.status_code == 502, response.text
        error = response.json()["error"]
        assert error["code"] == "start_failed"
        detail = (await api.get(f"/sessions/{error['session_id']}")).json()["detail"]
    exception = "ModuleNotFoundError: No module named 'voicefleet_test_module_that_does_not_exist'"
    assert detail.startswith("exit code 4: ") and str(broken) in detail and exception in detail
    assert str(broken) in error["message"] and exception in error["message"]


async def test_a_bot_that_exits_cleanly_is_reported_ended(api, standin_mode):
    standin_mode("exit-clean")
    session = (await api.post("/start", json={})).json()
    assert (await poll_status(api, session["session_id"], "ended"))["status"] == "ended"


async def test_a_bot_that_never_gets_ready_makes_wait_time_out_with_504(make_api, standin_mode):
    standin_mode("never-ready")
    async with make_api(start_wait_seconds=0.5) as api:
        response = await api.post("/start?wait=started", json={})
        assert response.status_code == 504
        error = response.json()["error"]
        assert error["code"] == "start_timeout"
        assert (await api.get(f"/sessions/{error['session_id']}")).json()["status"] == "starting"


async def test_an_unstartable_bot_command_is_a_clean_502(make_api, monkeypatch):
    from dispatcher.machines.local.provider import LocalSettings

    context = make_api()
    context.machines._settings = LocalSettings(bot_command=("/nonexistent/bot",))
    async with context as api:
        response = await api.post("/start", json={})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "local_rejected"


async def test_the_offer_is_proxied_to_the_sessions_bot(api):
    session = await start(api)
    response = await api.post(session["offer_url"], json={"sdp": "v=0 offer", "type": "offer"})
    assert response.status_code == 200
    assert response.json() == {"sdp": "answer-to:v=0 offer", "type": "answer", "pc_id": "standin-pc"}


async def test_trickled_candidates_are_proxied(api):
    session = await start(api)
    patch = {"pc_id": "standin-pc", "candidates": [{"candidate": "candidate:1 1 udp 1 192.0.2.2 9 typ host",
                                                    "sdp_mid": "0", "sdp_mline_index": 0}]}
    response = await api.patch(session["offer_url"], json=patch)
    assert response.status_code == 200 and response.json() == {"status": "ok"}  # the bot's own answer


async def test_an_offer_to_an_ended_session_is_409(api):
    session = await start(api)
    await api.delete(f"/sessions/{session['session_id']}")
    response = await api.post(f"/sessions/{session['session_id']}/api/offer", json={"sdp": "v=0", "type": "offer"})
    assert response.status_code == 409


async def test_an_early_offer_waits_for_the_bot(api):
    session = (await api.post("/start", json={})).json()  # not waited on
    response = await api.post(session["offer_url"], json={"sdp": "early", "type": "offer"})
    assert response.status_code == 200


async def test_metrics_count_starts_failures_and_active_sessions(api):
    await start(api)
    await api.post("/start", json={"body": "wrong"})  # a validation error is not a start attempt
    text = (await api.get("/metrics")).text
    assert 'voicefleet_session_starts_total{outcome="created",provider="local",release="default"} 1.0' in text
    assert 'voicefleet_active_sessions{provider="local",release="default"} 1.0' in text
    assert 'voicefleet_launch_seconds_count{provider="local",release="default",waited="true"} 1.0' in text


async def test_metrics_count_failures_by_reason(make_api):
    async with make_api(max_concurrent_sessions=1) as api:
        await api.post("/start", json={})
        await api.post("/start", json={})
        text = (await api.get("/metrics")).text
    failures = 'voicefleet_session_start_failures_total{provider="local",reason="at_capacity",release="default"}'
    assert f"{failures} 1.0" in text


async def test_closing_the_dispatcher_stops_every_bot(make_api):
    context = make_api()
    async with context as api:
        sessions = [await start(api) for _ in range(3)]
        pids = [bot_pid(api, s["session_id"]) for s in sessions]
    assert not any(pid_alive(pid) for pid in pids)


@pytest.mark.parametrize("path", ["/", "/static/talk.js"])
async def test_the_local_page_is_served_with_a_strict_csp(api, path):
    response = await api.get(path)
    assert response.status_code == 200
    if path == "/":
        assert "connect-src 'self'" in response.headers["content-security-policy"]
        assert "http" not in response.text.replace("http-equiv", "")  # no off-host asset
