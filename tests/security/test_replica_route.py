"""Finding 2: the replicas' forwarding route takes its own credential, and exists only with peers.

The attack: a bot credential on `POST /internal/bots/{session}/request` made its holder any
session's WebRTC peer, before the real client (who then got 409 peer_already_connected).
"""

from __future__ import annotations

from tests.security.conftest import WAIT, MakeDispatcher, stolen_credential

OFFER = {"method": "webrtc.offer", "params": {"sdp": "v=0\r\n", "type": "offer"}}


async def test_a_bot_credential_cannot_signal_another_sessions_bot_through_the_replica_route(
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

    assert forged.status_code == 404, "the replica route is mounted with no peer configured"
    assert offered.status_code == 200, offered.text  # control: the caller's own offer reaches the bot


async def test_with_peers_the_route_takes_the_replica_credential_and_refuses_a_bots(
    make_dispatcher: MakeDispatcher,
) -> None:
    d = await make_dispatcher(DISPATCHER_PEERS="http://127.0.0.1:9")
    [own, victim] = [(await d.client.post("/start?wait=started", json={"body": {}})).json()["session_id"]
                     for _ in range(2)]
    channels = d.state.channels
    assert await channels.wait_until(lambda: channels.link_for(victim) is not None, WAIT)
    credential = stolen_credential(d.session_pid(own))
    replica = d.state.peers.credential

    forged = await d.client.post(f"/internal/bots/{victim}/request", json=OFFER,
                                 headers={"Authorization": f"Bearer {credential}"})
    forwarded = await d.client.post(f"/internal/bots/{victim}/request", json=OFFER,
                                    headers={"Authorization": f"Bearer {replica}"})

    assert forged.status_code == 403
    assert forwarded.status_code == 200, forwarded.text  # control: a replica reaches the bot
