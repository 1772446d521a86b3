"""A bridged transfer's leg on a trunk priced for outbound calls only, through the dispatcher's own routes: the
edge tells the person's leg (`POST /edge/calls/{id}/bridged`, with its secret) for a session that has no
`telephony` line of its own, and `GET /sessions/{id}` answers the leg priced and the session's own call not
priced, never as free (a real stand-in bot process, ended before the edge's reports, as at a bridge)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.edge_secret import EdgeSecret
from dispatcher.settings import Settings
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.support.dispatcher_server import in_process
from tests.support.waiting import until

SECRET = "edge-control-secret-for-the-tests-0123456789"
OUTBOUND_USD = 0.0097


async def test_a_leg_bridged_from_an_unpriced_call_is_in_its_telephony_usd_and_total(
        standin_mode: Callable[[str], None]) -> None:
    standin_mode("pipeline-error")  # the bot starts, then ends on its own: the session is over, as at a bridge
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, bot_env=STANDIN_ENV))
    env = {"SIP_EDGE_URL": "http://127.0.0.1:9", "SIP_EDGE_SECRET": SECRET, "RESERVE_MAX_IDLE": "0"}
    app = create_app(Settings(), env=env, machines=machines, rooms=None)
    async with in_process(app) as running:
        api = running.client
        start = await api.post("/start", json={})
        assert start.status_code == 201, start.text
        session_id = start.json()["session_id"]
        # The call came in at the edge, as its inbound start through the edge records it: its reports are the edge's.
        await running.state.trunk_calls.took_inbound(session_id, "http://127.0.0.1:9")

        async def ended() -> bool:
            answer: dict[str, Any] = (await api.get(f"/sessions/{session_id}")).json()
            return answer.get("status") in ("ended", "failed") and "cost" in answer

        await until(ended, "the session's end", timeout=30)
        signed = {"Authorization": f"Bearer {EdgeSecret(SECRET).edge_credential('http://127.0.0.1:9')}"}
        answered = {"event": "answered", "trunk": "twilio", "direction": "outbound", "usd_per_minute": OUTBOUND_USD,
                    "increment_seconds": 60, "time_limit_seconds": 7200}
        for leg in (answered, {"event": "ended", "trunk": "twilio"}):
            told = await api.post(f"/edge/calls/{session_id}/bridged", json=leg, headers=signed)
            assert told.status_code == 204, told.text
        answer = await api.get(f"/sessions/{session_id}")
    assert answer.status_code == 200, answer.text
    cost = answer.json()["cost"]
    line = cost["telephony"]
    assert line["bridged"]["usd"] == OUTBOUND_USD and line["bridged"]["billed_minutes"] == 1.0, line
    assert (line["trunk"], line["direction"], line["priced"]) == ("twilio", "inbound", "not priced"), line
    assert "usd" not in line and "usd_per_minute" not in line, line  # not priced, never "usd": 0
    assert cost["telephony_usd"] == OUTBOUND_USD
    assert cost["total"] == round(cost["machine_usd"] + OUTBOUND_USD, 6)
    assert "the SIP call's own minutes: trunk twilio has no inbound price in the SIP edge's file" in cost["not_counted"]
