"""The SIP edge's warm transfer steps (`POST /edge/calls/{id}/warm`): only its secret reaches a bot through
them, only for a warm transfer this dispatcher (or a replica, through the store) asked the edge for, for a
session that exists, with a step the contract names (dispatcher/api/warm_briefing.py)."""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.app import create_app
from dispatcher.errors import ApiError
from dispatcher.phone.edge_secret import EdgeSecret
from dispatcher.phone.sip_transfers import SipTransfers
from dispatcher.phone.transfer_target import transfer_target
from dispatcher.phone.trunk_calls import TrunkCallSettings
from dispatcher.settings import Settings
from tests.support.dispatcher_server import in_process

SECRET = "edge-control-secret-for-the-tests-0123456789"
ENV = {"SIP_EDGE_URL": "http://127.0.0.1:9", "SIP_EDGE_SECRET": SECRET}
SIGNED = {"Authorization": f"Bearer {EdgeSecret(SECRET).edge_credential('http://127.0.0.1:9')}"}


async def test_a_warm_step_needs_the_edges_secret_a_transfer_under_way_a_session_and_a_known_step() -> None:
    app = create_app(Settings(), env=ENV, rooms=None)
    async with in_process(app) as running:
        api = running.client
        step = {"event": "brief", "summary": "Ana wants a refund.", "transfer": "r1"}
        assert (await api.post("/edge/calls/s1/warm", json=step)).status_code == 401
        wrong = {"Authorization": "Bearer " + "x" * len(SECRET)}
        assert (await api.post("/edge/calls/s1/warm", json=step, headers=wrong)).status_code == 401
        unheld = await api.post("/edge/calls/s1/warm", json=step, headers=SIGNED)
        assert unheld.status_code == 404, unheld.text  # no call of this edge's: nothing of the session is told
        for session_id in ("s1", "s2"):  # calls that came in at the edge (its inbound starts recorded them)
            await running.state.trunk_calls.took_inbound(session_id, "http://127.0.0.1:9")
        refused = await api.post("/edge/calls/s1/warm", json=step, headers=SIGNED)
        assert (refused.status_code, refused.json()["error"]["code"]) == (409, "no_warm_transfer"), refused.text
        # The dispatcher asks the edge for a warm transfer of s1 (the edge is not there: the request fails),
        # and its request id is recorded in the store first, as the one the edge's steps name.
        holders = running.state.replication.coordination.key_holders
        edge = TrunkCallSettings.from_env(ENV)
        assert edge is not None
        asked = SipTransfers(edge, holders)
        sent: list[str] = []
        at = edge.edge_urls[0]
        client = asked.edges.client(at)
        original = client.request

        async def request(method: str, url: str, **kwargs: Any) -> Any:
            sent.append(str(kwargs["json"]["request_id"]))
            return await original(method, url, **kwargs)

        client.request = request  # type: ignore[method-assign]  # the request as sent, noted
        with pytest.raises(ApiError):
            await asked.transfer("s1", transfer_target("+14155550123", "warm"), 60, at)
        await asked.aclose()
        unknown = await api.post("/edge/calls/s1/warm", json={**step, "transfer": sent[0]}, headers=SIGNED)
        assert unknown.status_code == 404, unknown.text  # under way; the session is not here
        for other in ("r1", sent[0] + "x"):  # another id, or the same of another session
            assert (await api.post("/edge/calls/s1/warm", json={**step, "transfer": other},
                                   headers=SIGNED)).status_code == 409
        assert (await api.post("/edge/calls/s2/warm", json={**step, "transfer": sent[0]},
                               headers=SIGNED)).status_code == 409
        for bad in ({"event": "shout"}, {"event": "brief", "summary": "x" * 301}, {"event": "brief", "extra": 1},
                    {"event": "stop", "transfer": None}):
            answer = await api.post("/edge/calls/s1/warm", json={"transfer": sent[0], **bad}, headers=SIGNED)
            assert answer.status_code == 422, answer.text
