"""POST /start speaks Pipecat's request and response shapes (local mode; the cloud's are in
tests/dispatcher/machines/test_pipecat_cloud.py)."""

from __future__ import annotations

import pytest

from dispatcher.media.ice import IceServer, StaticIceServers


async def test_the_docs_free_form_request_data_becomes_the_bots_body(api, local_spy):
    response = await api.post("/start", json={"initial_prompt": "Be brief", "llm_provider": "openai"})
    assert response.status_code == 201, response.text
    assert local_spy.bodies[-1] == {"initial_prompt": "Be brief", "llm_provider": "openai"}
    assert set(response.json()) == {"sessionId"}  # what the SmallWebRTC transport reads, nothing else


async def test_pipecat_clouds_shape_starts_a_webrtc_session_without_a_room(api, local_spy):
    response = await api.post("/start", json={"createDailyRoom": False, "body": {"lang": "de"}})
    assert response.status_code == 201, response.text
    assert local_spy.bodies[-1] == {"lang": "de"}
    assert response.headers["Location"] == f"/sessions/{response.json()['sessionId']}"


async def test_the_dev_runners_shape_is_accepted(api, local_spy):
    response = await api.post("/start", json={"transport": "webrtc", "body": {"a": 1}})
    assert response.status_code == 201, response.text
    assert local_spy.bodies[-1] == {"a": 1}


async def test_the_prebuilt_uis_request_gets_the_default_stun_server_when_none_is_configured(api):
    response = await api.post(
        "/start", json={"createDailyRoom": False, "enableDefaultIceServers": True, "transport": "webrtc"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["iceConfig"] == {"iceServers": [{"urls": ["stun:stun.l.google.com:19302"]}]}


async def test_configured_ice_servers_are_answered_to_every_webrtc_start(make_api):
    turn = IceServer(urls=("turn:turn.example.com:3478",), username="u", credential="c")
    async with make_api(ice_servers=StaticIceServers((turn,))) as api:
        native = (await api.post("/start", json={"body": {}})).json()
        pipecat = (await api.post("/start", json={"enableDefaultIceServers": True})).json()
    expected = {"iceServers": [{"urls": ["turn:turn.example.com:3478"], "username": "u", "credential": "c"}]}
    assert native["iceConfig"] == pipecat["iceConfig"] == expected


async def test_our_own_shape_gets_our_fields_and_pipecats_names_beside_them_without_nulls(api):
    session = (await api.post("/start", json={"body": {"a": 1}})).json()
    assert session["sessionId"] == session["session_id"]
    assert session["offer_url"] == f"/sessions/{session['session_id']}/api/offer"
    assert None not in session.values()
    assert "iceConfig" not in session  # none configured, none asked for


async def test_get_session_carries_pipecats_name_and_no_nulls(api):
    session_id = (await api.post("/start", json={})).json()["session_id"]
    got = (await api.get(f"/sessions/{session_id}")).json()
    assert got["sessionId"] == got["session_id"] == session_id
    assert None not in got.values()


@pytest.mark.parametrize(
    ("request_json", "message"),
    [
        ({"transport": "daily"}, "transport 'daily' is not offered by this deployment; it offers webrtc"),
        ({"createDailyRoom": True}, "createDailyRoom: true (transport 'daily') is not offered"),
        ({"transport": "livekit", "body": {}}, "transport 'livekit' is not offered"),
    ],
)
async def test_a_transport_this_deployment_does_not_offer_is_a_clear_400(api, request_json, message):
    response = await api.post("/start", json=request_json)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert response.json()["error"]["code"] == "transport_not_offered"


async def test_a_daily_start_to_a_webrtc_deployment_says_what_turns_daily_on_and_what_to_start_with(api):
    message = (await api.post("/start", json={"transport": "daily"})).json()["error"]["message"]
    assert "It is served once the dispatcher's TRANSPORTS lists daily (TRANSPORTS=webrtc,daily; a local " \
           "dispatcher also needs DAILY_API_KEY" in message, message
    assert message.endswith("or start with transport 'webrtc', which this deployment serves")
    other = (await api.post("/start", json={"transport": "livekit", "body": {}})).json()["error"]["message"]
    assert "It is served once" not in other  # no transport of ours: nothing turns it on


async def test_unknown_keys_beside_body_are_refused_with_a_hint(api):
    response = await api.post("/start", json={"body": {"a": 1}, "initial_prompt": "hi"})
    assert response.status_code == 422
    assert "initial_prompt" in response.json()["detail"] and "inside `body`" in response.json()["detail"]


async def test_a_free_form_body_over_the_limit_is_413(api):
    response = await api.post("/start", json={"blob": "x" * 5000})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


async def test_errors_carry_the_message_as_top_level_detail(api):
    response = await api.get("/sessions/" + "0" * 24)
    error = response.json()
    assert response.status_code == 404
    assert error["detail"] == error["error"]["message"] == f"no session {'0' * 24}"


async def test_curls_form_labelled_json_is_read_as_json(api, local_spy):
    response = await api.post(
        "/start",
        content=b'{"body": {"lang": "en"}}',
        headers={"Content-Type": "application/x-www-form-urlencoded", "Idempotency-Key": "call-1"},
    )
    assert response.status_code == 201, response.text
    assert local_spy.bodies[-1] == {"lang": "en"}


async def test_a_form_labelled_body_that_is_not_json_is_a_400(api):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = await api.post("/start", content=b"lang=en", headers=form)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


async def test_a_browser_must_label_its_json_even_from_an_allowed_page(api, local_spy):
    before = len(local_spy.bodies)
    response = await api.post(
        "/start", content=b'{"body": {}}', headers={"Content-Type": "text/plain", "Origin": "http://localhost:5173"}
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]
    assert len(local_spy.bodies) == before


@pytest.mark.parametrize("key", ["requestData", "request_data"])
async def test_the_offers_request_data_reaches_the_bot(api, key):
    session = (await api.post("/start", json={"createDailyRoom": False})).json()
    offer = {"sdp": "v=0", "type": "offer", "pc_id": None, "restart_pc": False, key: {"initial_prompt": "hi"}}
    response = await api.post(f"/sessions/{session['sessionId']}/api/offer", json=offer)
    assert response.status_code == 200, response.text
    assert response.json()["request_data_seen"] == {"initial_prompt": "hi"}


async def test_an_offer_without_request_data_sends_none(api):
    session = (await api.post("/start", json={})).json()
    response = await api.post(session["offer_url"], json={"sdp": "v=0", "type": "offer", "pc_id": None})
    assert "request_data_seen" not in response.json()


async def test_request_data_over_the_body_limit_is_413(api):
    session = (await api.post("/start", json={})).json()
    offer = {"sdp": "v=0", "type": "offer", "requestData": {"blob": "x" * 5000}}
    response = await api.post(session["offer_url"], json=offer)
    assert response.status_code == 413


async def test_request_data_of_exactly_the_body_limit_reaches_the_bot(api):
    session = (await api.post("/start", json={})).json()
    data = {"blob": "x" * (4096 - len('{"blob":""}'))}  # 4096 bytes as compact JSON: MAX_BODY_BYTES' default
    offer = {"sdp": "v=0", "type": "offer", "requestData": data}
    response = await api.post(session["offer_url"], json=offer)
    assert response.status_code == 200 and response.json()["request_data_seen"] == data


async def test_an_offer_to_the_runners_direct_path_starts_a_session_for_it(api, local_spy):
    offer = {"sdp": "v=0", "type": "offer", "pc_id": None, "requestData": {"lang": "en"}}
    response = await api.post("/api/offer", json=offer)
    assert response.status_code == 200, response.text
    session_id = response.headers["Location"].removeprefix("/sessions/")
    assert response.json()["pc_id"] == f"{session_id}:standin-pc"
    assert local_spy.bodies == [{"lang": "en"}]
    assert (await api.get(f"/sessions/{session_id}")).status_code == 200

    renegotiation = await api.post("/api/offer", json={**offer, "pc_id": response.json()["pc_id"]})
    assert renegotiation.status_code == 200
    assert renegotiation.json()["pc_id"] == response.json()["pc_id"]
    assert len(local_spy.bodies) == 1  # the same session, no second bot

    candidates = [{"candidate": "candidate:1 1 udp 1 192.0.2.2 9 typ host", "sdp_mid": "0", "sdp_mline_index": 0}]
    patch = await api.patch("/api/offer", json={"pc_id": response.json()["pc_id"], "candidates": candidates})
    assert patch.status_code == 200


async def test_the_direct_path_refuses_a_pc_id_it_never_gave(api, local_spy):
    patch = await api.patch("/api/offer", json={"pc_id": "standin-pc", "candidates": []})
    offer = await api.post("/api/offer", json={"sdp": "v=0", "type": "offer", "pc_id": "standin-pc"})
    assert (patch.status_code, offer.status_code) == (404, 404)
    assert patch.json()["error"]["code"] == offer.json()["error"]["code"] == "unknown_pc_id"
    assert local_spy.bodies == []


async def test_a_page_on_an_allowed_origin_can_read_the_sessions_location(make_api):
    async with make_api(cors_allow_origins=("https://app.example.com",)) as api:
        response = await api.post("/start", json={"transport": "webrtc"}, headers={"Origin": "https://app.example.com"})
    assert response.status_code == 201
    assert "location" in response.headers["access-control-expose-headers"].lower()


@pytest.mark.parametrize("path", ["/connect", "/"])
async def test_a_client_that_posts_its_own_servers_route_is_told_to_post_start_and_join_with_the_token(
    api, local_spy, path
):
    """pipecat-examples' clients post `/connect` (bot-ready-signalling, instant-voice) or `/` (storytelling) to
    their own server: the answer is an error naming `POST /start` and what its answer holds, never a start
    nor a bare 405."""
    response = await api.post(path, json={})
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["code"] == "use_start", error
    assert "POST /start" in error["message"] and "room_url" in error["message"] and "token" in error["message"]
    assert local_spy.bodies == []  # nothing was started
