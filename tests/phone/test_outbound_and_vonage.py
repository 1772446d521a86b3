"""The two ways docs/phone.md gives for what voicefleet does not do itself, each in its example's shape,
against a real `python -m dispatcher` with API keys:

- an outbound call: the team's server places it (Twilio's or Telnyx's REST API, not reached here)
  and answers the carrier's `/answer` as pipecat-examples' outbound servers do, with one change: it
  asks voicefleet for the call's stream (`POST /start {"transport": <carrier>, "body": …}`) and puts
  `{wsUrl}/{token}` in its TwiML/TeXML `<Stream>`;
- Vonage (or any WebSocket carrier): the team's `/answer` asks for `transport: websocket` and hands
  Vonage `{wsUrl}/{token}` as the NCCO's `uri`; the bot runs its own `VonageFrameSerializer`."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import quoteattr

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.fakes.carriers import CarrierCall
from tests.fakes.vonage import VonageCall
from tests.phone.conftest import phone_env, wait_active_sessions, wait_for_idle_bot
from tests.phone.test_calls import rms
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.session_api import METRICS_ADMIN

pytestmark = pytest.mark.slow  # real processes importing Pipecat

KEY = "outbound-test-key-0123456789"
VONAGE_BOT = Path(__file__).with_name("vonage_bot.py")


def teams_server(voicefleet: str, api_key: str, transport: str) -> FastAPI:
    """The team's own server, as pipecat-examples' outbound (and Vonage) servers are written: the
    carrier fetches `/answer` once the callee picks up (the call's data in `?body=`, base64 JSON, as
    the examples pass it), and the answer names the stream. Pipecat Cloud's URL there becomes one
    `POST /start` to voicefleet."""
    app = FastAPI()

    async def stream_url(request: Request) -> str:
        raw = request.query_params.get("body")
        body = json.loads(base64.b64decode(raw)) if raw else {}
        async with api_client(base_url=voicefleet, headers={"Authorization": f"Bearer {api_key}"},
                                     timeout=10) as api:
            answer = await api.post("/start", json={"transport": transport, "body": body})
        answer.raise_for_status()
        start = answer.json()
        return f"{start['wsUrl']}/{start['token']}"

    @app.post("/answer")
    async def answer(request: Request) -> Response:
        if transport == "websocket":  # Vonage's NCCO
            ncco = [{"action": "connect", "endpoint": [{"type": "websocket", "uri": await stream_url(request),
                                                        "content-type": "audio/l16;rate=16000"}]}]
            return JSONResponse(ncco)
        mode = ' bidirectionalMode="rtp"' if transport == "telnyx" else ""
        url = quoteattr(await stream_url(request))
        xml = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url={url}{mode}></Stream>'
               '</Connect><Pause length="40"/></Response>')
        return Response(xml, media_type="application/xml")

    return app


async def carrier_fetches_answer(server: FastAPI, body: dict[str, object]) -> httpx.Response:
    encoded = base64.b64encode(json.dumps(body).encode()).decode()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="https://team.example") as http:
        return await http.post("/answer", params={"body": encoded}, data={"CallSid": "CA1", "From": "+14155550100"})


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DispatcherProcess, Path]]:
    reports = tmp_path_factory.mktemp("calls")
    env = {**phone_env(reports), "DISPATCHER_API_KEYS": KEY, **METRICS_ADMIN}
    with run_dispatcher(tmp_path_factory.mktemp("outbound"), env) as running:
        yield running, reports


@pytest.mark.parametrize("carrier", ["twilio", "telnyx"])
async def test_an_outbound_calls_answer_streams_to_voicefleet_with_its_body(
    keyed: tuple[DispatcherProcess, Path], carrier: str
) -> None:
    dispatcher, reports = keyed
    server = teams_server(dispatcher.base_url, KEY, carrier)
    answered = await carrier_fetches_answer(server, {"user": {"firstName": "John"}})
    assert answered.status_code == 200, answered.text
    stream = ET.fromstring(answered.content).find("./Connect/Stream")
    assert stream is not None
    url = stream.attrib["url"]
    assert url.startswith(dispatcher.base_url.replace("http", "ws") + f"/ws/{carrier}/"), url
    async with api_client(base_url=dispatcher.base_url, headers={"Authorization": f"Bearer {KEY}"},
                                 timeout=30) as api:
        await wait_for_idle_bot(api)
        call = CarrierCall(carrier, url)  # the carrier dials the stream the answer named
        await call.open()
        await call.handshake()
        greeting = await call.bot_audio(0.1, timeout=30)
        assert rms(greeting) > 500
        await call.hang_up()
        assert await wait_active_sessions(api, 0) == 0
    (report,) = [json.loads(p.read_text()) for p in reports.glob("*.json")
                 if json.loads(p.read_text())["transport_type"] == carrier]
    assert report["body"] == {"user": {"firstName": "John"}}


async def test_a_vonage_call_reaches_its_bot_on_the_generic_path(tmp_path: Path) -> None:
    reports = tmp_path / "calls"
    reports.mkdir()
    env = {**phone_env(reports), "BOT_FILE": str(VONAGE_BOT), "DISPATCHER_API_KEYS": KEY, **METRICS_ADMIN}
    with run_dispatcher(tmp_path, env) as dispatcher:
        server = teams_server(dispatcher.base_url, KEY, "websocket")
        answered = await carrier_fetches_answer(server, {"plan": "gold"})
        assert answered.status_code == 200, answered.text
        (connect,) = answered.json()
        uri = connect["endpoint"][0]["uri"]
        assert uri.startswith(dispatcher.base_url.replace("http", "ws") + "/ws/generic/voicefleet/"), uri
        async with api_client(base_url=dispatcher.base_url, headers={"Authorization": f"Bearer {KEY}"},
                                     timeout=30) as api:
            await wait_for_idle_bot(api)
            call = VonageCall(uri)
            await call.open()
            audio = b""
            while len(audio) < 3200:  # 0.1 s of the greeting, 16-bit PCM at 16 kHz, as Vonage takes it
                audio += await call.bot_audio(timeout=30)
            assert rms(audio) > 500
            await call.hang_up()
            assert await wait_active_sessions(api, 0) == 0
        (report,) = [json.loads(p.read_text()) for p in reports.glob("*.json")]
        assert report["body"] == {"plan": "gold"}
