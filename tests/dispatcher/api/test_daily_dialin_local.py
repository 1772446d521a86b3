"""Daily dial-in tried locally: a keyless local dispatcher with `TRANSPORTS=webrtc,daily` and
`DAILY_API_KEY` makes the call's SIP room (against tests/fakes/daily.py) and starts a local bot
process with Daily's runner values (`--transport daily`, the room and token in its environment,
Pipecat's dial-in body), and the bot's `pinlessCallUpdate` reaches Daily through the dispatcher.
The settings and rooms come from the environment, as `python -m dispatcher` builds them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.settings import Settings, SettingsError
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_LOCAL_BOT_ENV
from tests.fakes.daily import FakeDaily
from tests.support.dispatcher_server import serving

CALL = {"From": "+14155550100", "To": "+14155550199", "callId": "call-local-1", "callDomain": "dom-1"}


def local_env(fake_daily: FakeDaily, record_dir: Path) -> dict[str, str]:
    """A keyless local dispatcher's environment, its bots the stand-in (which speaks the bot channel
    and records what reached it: tests/dispatcher/standin_bot.py)."""
    return {**fake_daily.env, "TRANSPORTS": "webrtc,daily", "LOCAL_BOT_COMMAND": " ".join(STANDIN_BOT),
            **STANDIN_LOCAL_BOT_ENV, "STANDIN_RECORD_DIR": str(record_dir)}


def test_a_local_dispatcher_takes_daily_only_with_the_key_that_makes_its_rooms() -> None:
    with pytest.raises(SettingsError, match="TRANSPORTS includes daily: .*DAILY_API_KEY"):
        Settings.from_env({"TRANSPORTS": "webrtc,daily"})
    assert Settings.from_env({"TRANSPORTS": "webrtc,daily", "DAILY_API_KEY": "k"}).transports == ("webrtc", "daily")


async def test_a_dialin_call_gets_a_sip_room_and_a_local_bot_with_dailys_runner_values(
        fake_daily: FakeDaily, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = local_env(fake_daily, tmp_path)
    monkeypatch.setenv("STANDIN_RECORD_DIR", str(tmp_path))  # bots inherit only what LOCAL_BOT_ENV names
    app = create_app(Settings.from_env(env), env=env)
    try:
        async with serving(app):  # on a loopback port too, for the bots' channel
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://127.0.0.1:8080") as http:
                fake_daily.hold_call(CALL["callId"], CALL["callDomain"])
                answer = await http.post("/phone/daily/dialin", json=CALL)
                assert answer.status_code == 201, answer.text
                room_url = answer.json()["dailyRoom"]
                (room,) = fake_daily.rooms.values()
                assert room["config"]["sip"]["sip_mode"] == "dial-in"  # a SIP-enabled room, made with the local key
                session_id = answer.json()["sessionId"]
                record_file = tmp_path / f"{session_id}.json"
                for _ in range(200):
                    if record_file.exists():
                        break
                    await asyncio.sleep(0.05)
                record = json.loads(record_file.read_text())
                argv = record["argv"]
                assert argv[argv.index("--transport") + 1] == "daily" and record["room_url"] == room_url
                body = json.loads(record["body"])
                assert body["dialin_settings"]["call_id"] == CALL["callId"]
                assert body["daily_api_url"] == f"http://127.0.0.1:8080/phone/daily/{session_id}"
                # The bot's update, as Pipecat's DailyTransport sends it, goes to Daily with the dispatcher's key.
                update = await http.post(f"/phone/daily/{session_id}/dialin/pinlessCallUpdate",
                                         headers={"Authorization": f"Bearer {body['daily_api_key']}"},
                                         json={"callId": CALL["callId"], "callDomain": CALL["callDomain"],
                                               "sipUri": room["config"]["sip_uri"]["endpoint"]})
                assert update.status_code == 200, update.text
                assert fake_daily.connected_calls[CALL["callId"]] == room["config"]["sip_uri"]["endpoint"]
    finally:
        await app.state.voicefleet.aclose()
