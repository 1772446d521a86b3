"""Cloud sessions without Daily: `transport: webrtc` on every cloud provider, against its fake.

A WebRTC session gets no room (no Daily call at all), the client an offer URL and `iceConfig`
with its own short-lived TURN credentials, the bot other credentials of its own over its channel
(never in its launch values); the deployment's long-lived TURN secret reaches neither, nor any
provider call, nor a log line. The transport is recorded with the machine, so any replica answers for it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from dispatcher.app import create_app
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.media.turn import turn_password
from dispatcher.settings import Settings, hash_api_key
from tests.dispatcher.machines.harness import Harness
from tests.fakes.daily import FakeDaily
from tests.support.cold_bot import channel_url, take_session_values
from tests.support.dispatcher_server import serving

KEY = "webrtc-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
TURN_SECRET = "the-deployment-turn-secret-0123456789"
TURN_URLS = "turn:turn.example.com:3478?transport=udp,turns:turn.example.com:443?transport=tcp"
OFFER = {"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "type": "offer"}
# What the session service alone decides, whichever provider launched the machine (a transport the
# deployment does not offer, TURN credentials for a Daily session, a failed start's clean-up, the wait
# for a silent bot's channel): on two providers, each a different API. What each provider does (its
# launch values, the transport recorded with its machine, its status and stop) stays on all of them.
SERVICE_ONLY = pytest.mark.parametrize("harness", ["fly", "gce"], indirect=True)


@dataclass
class Deployment:
    http: httpx.AsyncClient
    fake_daily: FakeDaily
    channel_url: str = ""


def make_app(harness: Harness, fake_daily: FakeDaily, transports: tuple[str, ...], wait: float = 30.0) -> FastAPI:
    settings = Settings(
        machines=harness.name,
        api_key_hashes=frozenset({hash_api_key(KEY)}),
        max_session_seconds=600,
        max_concurrent_sessions=100_000,
        start_wait_seconds=wait,
        bot_channel_token="c" * 32,
        transports=transports,
    )
    env = {"TURN_URLS": TURN_URLS, "TURN_SHARED_SECRET": TURN_SECRET, "TURN_CREDENTIAL_TTL_SECONDS": "300"}
    rooms = DailyRooms(DailySettings.from_env(fake_daily.env))
    return create_app(settings, env=env, machines=harness.make(), rooms=rooms)


@pytest.fixture
async def deployment(harness: Harness, fake_daily: FakeDaily) -> AsyncIterator[Deployment]:
    """Both transports offered, WebRTC the default."""
    app = make_app(harness, fake_daily, ("webrtc", "daily"), wait=1.0)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
    async with serving(app) as port:  # the bots' channel, where a cold bot takes its values
        yield Deployment(http, fake_daily, channel_url(port))
    await http.aclose()
    await app.state.voicefleet.aclose()


def check_credentials(server: dict[str, str], session_id: str, role: str | None, issued: tuple[float, float]) -> None:
    """`issued`: the clock before the call that issued them and after its answer. Their expiry is
    TURN_CREDENTIAL_TTL_SECONDS (300) from a second within that call, however long the call took."""
    expiry, _, rest = server["username"].partition(":")
    assert rest == (f"{session_id}:{role}" if role else session_id)
    assert int(issued[0]) + 300 <= int(expiry) <= issued[1] + 300, (issued, expiry)
    assert server["credential"] == turn_password(TURN_SECRET.encode(), server["username"])


async def test_a_webrtc_session_has_no_room_its_own_turn_credentials_and_a_daily_one_beside_it_its_room(
    deployment: Deployment, harness: Harness, fake_daily: FakeDaily, caplog: pytest.LogCaptureFixture
) -> None:
    """One deployment per provider: a WebRTC session's answer, launch values, channel values, status,
    stop, a replica's view and a key reused with the other transport, none asking Daily; then a Daily
    session beside it, its room, its values and its offer refused."""
    caplog.set_level(logging.DEBUG)
    headers = {**AUTH, "Idempotency-Key": "call-42"}
    asked = time.time()
    response = await deployment.http.post("/start", json={"body": {"persona": "x"}}, headers=headers)
    answered = time.time()
    assert response.status_code == 201, response.text
    answer = response.json()
    session_id = answer["session_id"]
    assert answer["offer_url"] == f"/sessions/{session_id}/api/offer"
    assert "room_url" not in answer and "token" not in answer
    assert answer["iceConfig"]["iceTransportPolicy"] == "relay"  # ICE_TRANSPORT_POLICY: relay in the cloud
    [client] = answer["iceConfig"]["iceServers"]
    assert client["urls"] == TURN_URLS.split(",")
    check_credentials(client, session_id, None, (asked, answered))

    [launched] = harness.received(session_id)
    assert (launched["room_url"], launched["token"], launched["ice_config"]) == ("", "", "")  # no secret at launch
    bot_ice = (await take_session_values(deployment.channel_url, launched["channel_token"], session_id,
                                       identity=await harness.identity(session_id),
                                       machine_id=harness.machine_id(session_id)))["ice_config"]
    taken = time.time()  # the bot's are issued between the start's request and its bot's values
    assert bot_ice["iceTransportPolicy"] == "relay"  # the bot needs no reachable address
    [bot] = bot_ice["iceServers"]
    check_credentials(bot, session_id, "bot", (asked, taken))

    other = await deployment.http.post("/start", json={"transport": "daily", "body": {"persona": "x"}}, headers=headers)
    again = await deployment.http.post("/start", json={"body": {"persona": "x"}}, headers=headers)
    assert (other.status_code, again.status_code) == (409, 200), "the same key with the other transport"
    assert len(harness.received(session_id)) == 1, "a replay asked for a second machine"

    replica = make_app(harness, fake_daily, ("daily", "webrtc"))  # another default, same machines
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=replica), base_url="http://127.0.0.1") as http:
        seen = (await http.get(f"/sessions/{session_id}", headers=AUTH)).json()
    await replica.state.voicefleet.aclose()
    assert seen["offer_url"] == f"/sessions/{session_id}/api/offer" and "room_url" not in seen, \
        ("another replica took the session for a Daily one", seen)

    await harness.move(session_id, "started")
    status = (await deployment.http.get(f"/sessions/{session_id}", headers=AUTH)).json()
    assert status["status"] == "started"
    assert status["offer_url"] == f"/sessions/{session_id}/api/offer" and "room_url" not in status
    assert deployment.fake_daily.calls == [], "a WebRTC session asked Daily"

    daily = await deployment.http.post("/start", json={"transport": "daily", "body": {}}, headers=AUTH)
    assert daily.status_code == 201, daily.text
    room = daily.json()["dailyRoom"]  # Pipecat's shape: dailyRoom / dailyToken
    daily_id = room.rsplit("vf-", 1)[1]
    [daily_launched] = harness.received(daily_id)
    values = await take_session_values(deployment.channel_url, daily_launched["channel_token"], daily_id,
                                       identity=await harness.identity(daily_id),
                                       machine_id=harness.machine_id(daily_id))
    assert values["room_url"] == room
    assert "ice_config" not in values  # a Daily bot gets no TURN credentials
    assert len(deployment.fake_daily.rooms) == 1
    await harness.move(daily_id, "started")
    refused = await deployment.http.post(f"/sessions/{daily_id}/api/offer", json=OFFER, headers=AUTH)
    assert (refused.status_code, refused.json()["error"]["code"]) == (404, "no_signalling"), "an offer to Daily"

    # The long-lived secret: not in an answer, not in any provider call, not in a log line.
    assert TURN_SECRET not in response.text
    assert all(TURN_SECRET not in repr(c) for c in getattr(harness.fake, "calls", []))
    assert all(TURN_SECRET not in json.dumps(r) for r in harness.received(""))
    assert TURN_SECRET not in caplog.text

    # The WebRTC session's stop, last (the harness reads launches from the provider's calls, a stop's among
    # them on Fly): it asks Daily nothing about the session.
    before_stop = len(deployment.fake_daily.calls)
    stopped = await deployment.http.delete(f"/sessions/{session_id}", headers=AUTH)
    # (Compute Engine: the VM is deleted at once and the route answers 404 for it today, as for
    # a Daily session; that contract question is not this test's.)
    assert stopped.status_code in (202, 204) or (harness.name, stopped.status_code) == ("gce", 404)
    assert [c for c in deployment.fake_daily.calls[before_stop:] if session_id in repr(c)] == [], \
        "a WebRTC session's stop asked Daily"


@SERVICE_ONLY
async def test_an_offer_to_a_silent_bot_is_a_502(deployment: Deployment, harness: Harness) -> None:
    webrtc = (await deployment.http.post("/start", json={}, headers=AUTH)).json()
    await harness.move(webrtc["session_id"], "started")
    # No bot dialled in within START_WAIT_SECONDS: a clear 502, never a hang.
    silent = await deployment.http.post(f"/sessions/{webrtc['session_id']}/api/offer", json=OFFER, headers=AUTH)
    assert (silent.status_code, silent.json()["error"]["code"]) == (502, "bot_unreachable")


@pytest.mark.parametrize("harness", ["fly"], indirect=True)  # the untagged case is Fly's reserve claim
async def test_a_machine_without_the_transport_tag_has_the_deployments_default(
    deployment: Deployment, harness: Harness
) -> None:
    """A claimed Fly reserve machine carries no transport tag (Fly's per-machine write limit leaves
    room for three metadata writes on the claim path): it is the deployment's default, WebRTC here."""
    session_id = (await deployment.http.post("/start", json={}, headers=AUTH)).json()["session_id"]
    harness.fake.by_name(f"vf-{session_id}")["config"]["metadata"].pop("voicefleet_transport")
    await harness.move(session_id, "started")
    status = (await deployment.http.get(f"/sessions/{session_id}", headers=AUTH)).json()
    assert status["offer_url"] == f"/sessions/{session_id}/api/offer" and "room_url" not in status
    assert deployment.fake_daily.calls == []


@SERVICE_ONLY
async def test_a_deployment_s_transports_decide_a_refusal_a_failed_start_s_clean_up_and_turn_credentials(
    harness: Harness, fake_daily: FakeDaily
) -> None:
    """Three deployments over one provider: a failed WebRTC start cleans up without a Daily call; a
    deployment without WebRTC refuses it by name; a Daily session gets no TURN credentials (they let
    their holder relay through the deployment's TURN server: only a WebRTC session's caller needs them)."""
    app = make_app(harness, fake_daily, ("webrtc", "daily"))
    harness.reject()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
        failed = await http.post("/start", json={"body": {}}, headers=AUTH)
    await app.state.voicefleet.aclose()  # waits for the failed start's background clean-up
    assert failed.status_code == 502, failed.text
    assert fake_daily.calls == [], "a failed WebRTC start, which never had a room, asked Daily"

    app = make_app(harness, fake_daily, ("daily",))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
        refused = await http.post("/start", json={"transport": "webrtc", "body": {}}, headers=AUTH)
    await app.state.voicefleet.aclose()
    assert refused.status_code == 400 and "offers daily" in refused.json()["error"]["message"], refused.text

    app = make_app(harness, fake_daily, ("daily", "webrtc"))  # Daily by default, TURN configured
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
        response = await http.post("/start", json={"body": {}}, headers=AUTH)
    await app.state.voicefleet.aclose()
    assert response.status_code == 201, response.text
    assert "room_url" in response.json() and "iceConfig" not in response.json(), "a Daily session got TURN"
