"""Finding 2: no replica-to-replica route listens, so a bot's credential cannot open one.

The attack: a bot credential on `POST /internal/bots/{session}/request` made its holder any
session's WebRTC peer, before the real client (who then got 409 peer_already_connected). Replicas
now reach each other's bots through their shared store alone: the route is gone, with or without
a store, and the static peer list that needed it is refused at start-up rather than ignored.
"""

from __future__ import annotations

import pytest

from dispatcher.app import create_app
from dispatcher.settings import SettingsError
from tests.security.conftest import WAIT, MakeDispatcher, stolen_credential

OFFER = {"method": "webrtc.offer", "params": {"sdp": "v=0\r\n", "type": "offer"}}


async def test_a_bot_credential_cannot_signal_another_sessions_bot_through_a_replica_route(
    make_dispatcher: MakeDispatcher,
) -> None:
    d = await make_dispatcher()
    [own, victim] = [(await d.client.post("/start?wait=started", json={"body": {}})).json()["session_id"]
                     for _ in range(2)]
    channels = d.state.channels
    assert await channels.wait_until(lambda: channels.link_for(victim) is not None, WAIT)
    credential = stolen_credential(d.session_pid(own))

    forged = await d.client.post(f"/internal/bots/{victim}/request", json=OFFER,
                                 headers={"Authorization": f"Bearer {credential}"})
    offered = await d.client.post(f"/sessions/{victim}/api/offer", json={"sdp": "v=0\r\n", "type": "offer"})

    assert forged.status_code == 404, "a replica route is listening"
    assert offered.status_code == 200, offered.text  # control: the caller's own offer reaches the bot


@pytest.mark.parametrize("peers", ["http://10.0.1.7:8080", ""])
def test_a_static_peer_list_is_refused_at_start_up_and_names_the_store(peers: str) -> None:
    with pytest.raises(SettingsError, match="REDIS_URL"):
        create_app(env={"DISPATCHER_PEERS": peers}, rooms=None)
    assert create_app(env={}, rooms=None) is not None  # control: without it the same start-up succeeds
