"""What a team moving from Pipecat Cloud meets first, refused by a real `python -m dispatcher` with
API keys, each refusal naming the way that works here: a carrier path voicefleet does not serve
(Vonage's), Pipecat Cloud's stream URL with only its host changed, and the PSTN webhook server's
dial-in start. The refused upgrade answers with the JSON error body and the log says the same."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.fakes.daily import FakeDaily
from tests.fakes.server import serve
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher

KEY = "refusal-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    with serve(FakeDaily(), "/v1") as daily:
        env = {**daily.env, "DISPATCHER_API_KEYS": KEY, "TRANSPORTS": "webrtc,daily", "RESERVE_MIN_IDLE": "0",
               "RESERVE_MAX_IDLE": "0"}
        with run_dispatcher(tmp_path_factory.mktemp("refusals"), env) as running:
            yield running


async def refused_upgrade(url: str) -> tuple[int, dict[str, dict[str, str]]]:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, open_timeout=10):
            pass
    response = refused.value.response
    return response.status_code, json.loads(response.body or b"{}")


async def test_a_carrier_path_not_served_here_names_the_generic_path(keyed: DispatcherProcess) -> None:
    status, body = await refused_upgrade(keyed.base_url.replace("http", "ws") + "/ws/vonage")
    message = body["error"]["message"]
    assert status == 404 and body["error"]["code"] == "unknown_carrier", body
    assert "/ws/generic/voicefleet/{token}" in message and '"transport": "websocket"' in message, message
    assert "phone: stream refused: no carrier 'vonage' here" in keyed.log()


async def test_a_start_with_a_transport_not_offered_lists_the_streams_too(keyed: DispatcherProcess) -> None:
    async with api_client(base_url=keyed.base_url, headers=AUTH, timeout=10) as api:
        answer = await api.post("/start", json={"transport": "vonage", "body": {}})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "transport_not_offered"
    message = answer.json()["error"]["message"]
    assert "it offers webrtc and daily (a web session) and websocket, twilio, telnyx, plivo, exotel" in message
    assert "Vonage and any other WebSocket carrier use `websocket`" in message


async def test_pipecat_clouds_stream_url_with_only_the_host_changed_names_the_webhook_and_start(
    keyed: DispatcherProcess,
) -> None:
    body = base64.urlsafe_b64encode(json.dumps({"user": {"firstName": "John"}}).encode()).decode()
    url = keyed.base_url.replace("http", "ws") + f"/ws/telnyx?serviceHost=agent.org&body={body}"
    status, answer = await refused_upgrade(url)
    message = answer["error"]["message"]
    assert status == 403 and answer["error"]["code"] == "call_refused", answer
    assert "Pipecat Cloud's stream URL with only the host changed is taken by a keyless local dispatcher only" \
        in message, message
    assert "POST /phone/telnyx" in message and 'POST /start {"transport": "telnyx"' in message, message
    assert "{wsUrl}/{token}" in message, message
    assert "telnyx upgrade refused (no_proof): the telnyx stream was refused" in keyed.log()


# What Pipecat Cloud's PSTN webhook server (deployment/pipecat-cloud-daily-pstn-server) sends for a dial-in.
DIALIN_START = {
    "createDailyRoom": True,
    "dailyRoomProperties": {
        "enable_dialout": False,
        "sip": {"display_name": "+14155550100", "sip_mode": "dial-in", "num_endpoints": 1,
                "codecs": {"audio": ["OPUS"]}},
    },
    "body": {"dialin_settings": {"From": "+14155550100", "To": "+14155550199", "call_id": "c1", "call_domain": "d1"}},
}


async def test_pipecat_clouds_dialin_start_names_the_dialin_webhook_and_dialout_setting(
    keyed: DispatcherProcess,
) -> None:
    async with api_client(base_url=keyed.base_url, headers=AUTH, timeout=10) as api:
        answer = await api.post("/start", json=DIALIN_START)
        dialout = await api.post("/start", json={"createDailyRoom": True,
                                                 "dailyRoomProperties": {"enable_dialout": True}})
    assert answer.status_code == 422, answer.text
    message = answer.json()["error"]["message"]
    assert message.startswith("dailyRoomProperties.sip: "), message
    assert "POST /phone/daily/dialin/{DAILY_DIALIN_SECRET}" in message and "DAILY_ALLOW_DIALOUT=1" in message
    assert dialout.status_code == 422, dialout.text
    assert "DAILY_ALLOW_DIALOUT=1" in dialout.json()["error"]["message"]


@pytest.mark.parametrize(("path", "named"), [
    ("/ws/exotel", "wss://KEY:TOKEN@…/ws/exotel"),  # Exotel has no webhook: its applet holds the URL
    ("/ws/generic/voicefleet", 'POST /start {"transport": "websocket"'),
])
async def test_a_stream_without_proof_names_its_carriers_way_in(keyed: DispatcherProcess, path: str,
                                                                  named: str) -> None:
    status, answer = await refused_upgrade(keyed.base_url.replace("http", "ws") + path)
    assert status == 403 and named in answer["error"]["message"], answer
    assert "POST /phone/" not in answer["error"]["message"]  # no webhook serves these
