"""The SIP edge's warm transfer steps (`POST /edge/calls/{id}/warm`): only its secret reaches a bot through
them, for a session that exists, with a step the contract names (dispatcher/api/warm_briefing.py)."""

from __future__ import annotations

from dispatcher.app import create_app
from dispatcher.settings import Settings
from tests.support.dispatcher_server import in_process

SECRET = "edge-control-secret-for-the-tests-0123456789"


async def test_a_warm_step_needs_the_edges_secret_a_session_and_a_known_step() -> None:
    env = {"SIP_EDGE_URL": "http://127.0.0.1:9", "SIP_EDGE_SECRET": SECRET}
    app = create_app(Settings(), env=env, rooms=None)
    async with in_process(app) as running:
        api = running.client
        step = {"event": "brief", "summary": "Ana wants a refund."}
        assert (await api.post("/edge/calls/s1/warm", json=step)).status_code == 401
        wrong = {"Authorization": "Bearer " + "x" * len(SECRET)}
        assert (await api.post("/edge/calls/s1/warm", json=step, headers=wrong)).status_code == 401
        signed = {"Authorization": f"Bearer {SECRET}"}
        unknown = await api.post("/edge/calls/s1/warm", json=step, headers=signed)
        assert unknown.status_code == 404, unknown.text
        for bad in ({"event": "shout"}, {"event": "brief", "summary": "x" * 1001}, {"event": "brief", "extra": 1}):
            answer = await api.post("/edge/calls/s1/warm", json=bad, headers=signed)
            assert answer.status_code == 422, answer.text
