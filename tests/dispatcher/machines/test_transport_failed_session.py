"""A Daily bot that builds its transport with no room (pipecat-examples' ivr-navigation reads the room
from the request body, where voicefleet's client sent none): its set-up fails, and the session is
failed within seconds with the way out in its `detail`, not `joined`-looking until the join deadline.
A real local dispatcher, a real bot process, Daily's REST API faked (tests/fakes/daily.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.fakes.daily import FakeDaily
from tests.support.http_client import api_client
from tests.support.processes import run_dispatcher

BOT = Path(__file__).resolve().parents[2] / "bots" / "daily_room_from_body.py"
BOTS_OWN_ERROR = "'None' is not an instance of 'str'"  # daily-python's, at the transport's set-up


async def at_its_end(api: httpx.AsyncClient, session_id: str) -> dict[str, object]:
    """The session once `failed` or `ended` (its last state after 30 s of polling)."""
    session: dict[str, object] = {}
    for _ in range(300):
        session = (await api.get(f"/sessions/{session_id}")).json()
        if session.get("status") in ("failed", "ended"):
            break
        await asyncio.sleep(0.1)
    return session


async def test_a_bot_whose_daily_transport_gets_no_room_fails_its_session_at_once(
    fake_daily: FakeDaily, tmp_path: Path
) -> None:
    env = {**fake_daily.env, "TRANSPORTS": "daily", "RESERVE_MAX_IDLE": "0", "BOT_FILE": str(BOT),
           "BOT_CONNECT_TIMEOUT_SECONDS": "120", "START_WAIT_SECONDS": "120"}  # fmt: skip
    with run_dispatcher(tmp_path, env) as dispatcher:
        async with api_client(base_url=dispatcher.base_url, timeout=150) as api:
            started = await api.post("/start?wait=started", json={
                "transport": "daily", "body": {"dialout_settings": {"phone_number": "+15555550100"}}})  # fmt: skip
            began = time.monotonic()
            # The bot says `ready` as it hands the session to `bot()`, before the transport's set-up
            # fails: the start is answered, and the session fails right after.
            assert started.status_code == 201, started.text
            session_id = started.headers["Location"].rsplit("/", 1)[-1]
            session = await at_its_end(api, session_id)
            waited = time.monotonic() - began
    assert session.get("status") == "failed", session
    detail = str(session.get("detail") or session.get("error"))
    assert "runner_args.room_url" in detail and "runner_args.token" in detail, session
    assert BOTS_OWN_ERROR in str(session.get("error")), session
    assert waited < 20, waited  # a deadline for a loaded machine: the join deadline was 120 s


async def test_a_start_without_wait_is_answered_starting_and_its_session_fails_at_once_with_the_bots_own_error(
    fake_daily: FakeDaily, tmp_path: Path
) -> None:
    """A plain `POST /start` answers before the bot runs (with the room to join): it cannot know of a
    failure to come. The session then fails within seconds, not at the join deadline, and
    its `error` and `detail` hold the bot's own error beside the way out."""
    env = {**fake_daily.env, "TRANSPORTS": "daily", "RESERVE_MAX_IDLE": "0", "BOT_FILE": str(BOT),
           "BOT_CONNECT_TIMEOUT_SECONDS": "120"}  # fmt: skip
    with run_dispatcher(tmp_path, env) as dispatcher:
        async with api_client(base_url=dispatcher.base_url, timeout=150) as api:
            started = await api.post("/start", json={"transport": "daily", "body": {}})
            began = time.monotonic()
            assert started.status_code == 201 and started.json()["dailyRoom"], started.text
            session_id = started.headers["Location"].rsplit("/", 1)[-1]
            session = await at_its_end(api, session_id)
            waited = time.monotonic() - began
    assert session.get("status") == "failed", session
    assert BOTS_OWN_ERROR in str(session.get("error")), session
    assert "runner_args.room_url" in str(session.get("detail")), session
    assert waited < 20, waited
