"""Who may open a call's WebSocket: every refusal (HTTP 403 before the handshake, no machine
launched) beside its positive control (the upgrade accepted, one machine launched)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from dispatcher.phone.signatures import twilio_signature
from dispatcher.phone.tokens import CallTokens
from tests.support.phone_dispatcher import API_KEY, EXOTEL, TWILIO_TOKEN, Phone, phone_dispatcher

AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def refused(url: str, headers: dict[str, str] | None = None) -> int:
    with pytest.raises(InvalidStatus) as refusal:
        async with connect(url, additional_headers=headers or {}, proxy=None):
            pass
    return refusal.value.response.status_code


async def accepted(phone: Phone, url: str, headers: dict[str, str] | None = None) -> None:
    """The upgrade completes and the call's session is launched (the caller then hangs up)."""
    before = len(phone.launches)
    async with connect(url, additional_headers=headers or {}, proxy=None) as ws:
        await ws.send('{"event": "connected", "protocol": "Call", "version": "1.0.0"}')
        deadline = asyncio.get_running_loop().time() + 30  # a loaded machine takes its time; a pass is fast
        while len(phone.launches) == before and asyncio.get_running_loop().time() < deadline:
            await ws.send('{"event": "media"}')  # keeps the line busy while the session starts
            await asyncio.sleep(0.01)
    assert len(phone.launches) == before + 1


async def start_token(phone: Phone, carrier: str) -> str:
    answer = await phone.api.post("/start", json={"transport": carrier, "body": {"k": "v"}}, headers=AUTH)
    assert answer.status_code == 201, answer.text
    start = answer.json()
    assert start["wsUrl"] == f"wss://calls.example.com/ws/{carrier}"
    return str(start["token"])


async def test_a_token_opens_one_call_and_a_replay_of_it_is_refused(keyed: Phone) -> None:
    token = await start_token(keyed, "twilio")
    await accepted(keyed, keyed.ws(f"/ws/twilio/{token}"))
    assert await refused(keyed.ws(f"/ws/twilio/{token}")) == 403
    assert len(keyed.launches) == 1


async def test_a_forged_token_is_refused_before_any_machine(keyed: Phone) -> None:
    token = await start_token(keyed, "telnyx")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert await refused(keyed.ws(f"/ws/telnyx/{forged}")) == 403
    assert keyed.launches == []
    await accepted(keyed, keyed.ws(f"/ws/telnyx/{token}"))  # the genuine one still works


async def test_an_expired_token_is_refused_and_a_fresh_one_is_not(keyed: Phone) -> None:
    now = [1_000_000.0]
    state = keyed.app.state.voicefleet.phone
    state.tokens = CallTokens(state.settings.token_key, clock=lambda: now[0])
    stale, _ = state.tokens.mint("plivo")
    fresh, _ = state.tokens.mint("plivo")
    now[0] += 301
    assert await refused(keyed.ws(f"/ws/plivo/{stale}")) == 403
    assert keyed.launches == []
    state.tokens = CallTokens(state.settings.token_key, clock=lambda: now[0] - 301)
    await accepted(keyed, keyed.ws(f"/ws/plivo/{fresh}"))


async def test_a_token_for_another_carrier_is_refused(keyed: Phone) -> None:
    token = await start_token(keyed, "twilio")
    assert await refused(keyed.ws(f"/ws/exotel/{token}")) == 403
    assert keyed.launches == []


async def test_twilio_signs_the_stream_url_and_a_forged_signature_is_refused(keyed: Phone) -> None:
    url = "wss://calls.example.com/ws/twilio"  # what Twilio dialled (PHONE_PUBLIC_URL), and signed
    good = twilio_signature(TWILIO_TOKEN, url)
    assert await refused(keyed.ws("/ws/twilio"), {"X-Twilio-Signature": twilio_signature("other", url)}) == 403
    assert await refused(keyed.ws("/ws/twilio"), {"X-Twilio-Signature": good[:-2] + "=="}) == 403
    assert keyed.launches == []
    assert await refused(keyed.ws("/ws/twilio"), {"X-Twilio-Signature": good}) == 403  # signed streams are off
    state = keyed.app.state.voicefleet.phone
    state.settings = dataclasses.replace(state.settings, twilio_signed_streams=True)
    await accepted(keyed, keyed.ws("/ws/twilio"), {"X-Twilio-Signature": good})


async def test_exotel_basic_credential_wrong_and_right(keyed: Phone) -> None:
    wrong = base64.b64encode(b"exotel-key:guess").decode()
    right = base64.b64encode(f"{EXOTEL[0]}:{EXOTEL[1]}".encode()).decode()
    assert await refused(keyed.ws("/ws/exotel"), {"Authorization": f"Basic {wrong}"}) == 403
    assert keyed.launches == []
    await accepted(keyed, keyed.ws("/ws/exotel"), {"Authorization": f"Basic {right}"})


@pytest.mark.parametrize("carrier", ["twilio", "telnyx", "plivo", "exotel"])
async def test_no_proof_is_refused_where_keys_are_configured(keyed: Phone, carrier: str) -> None:
    assert await refused(keyed.ws(f"/ws/{carrier}")) == 403
    assert await refused(keyed.ws("/ws/generic/agent.org")) == 403
    assert keyed.launches == []


async def test_a_keyless_local_dispatcher_takes_calls_without_proof(keyless: Phone) -> None:
    await accepted(keyless, keyless.ws("/ws/twilio"))


async def test_start_with_a_phone_transport_needs_an_api_key(keyed: Phone) -> None:
    answer = await keyed.api.post("/start", json={"transport": "twilio"})
    assert answer.status_code == 401


async def start_websocket(phone: Phone, headers: dict[str, str]) -> dict[str, str]:
    answer = await phone.api.post("/start", json={"transport": "websocket"}, headers=headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def local(phone: Phone, ws_url: str) -> str:
    """The answer's `wsUrl` as this test reaches it (the dispatcher serves on a loopback port)."""
    return phone.ws(ws_url.split("://", 1)[1].partition("/")[2].join(["/", ""]))


@pytest.fixture(params=["keyed", "keyless"])
async def either(request: pytest.FixtureRequest) -> AsyncIterator[Phone]:
    async for phone in phone_dispatcher(keyed=request.param == "keyed"):
        yield phone


@pytest.mark.parametrize("form", ["query", "header", "path"])
async def test_pipecat_clients_token_forms_open_the_started_session(either: Phone, form: str) -> None:
    """Pipecat's WebSocket client dials `{wsUrl}?token=…`; Pipecat Cloud also takes the token as a
    Bearer header or a path segment. Each opens the session `POST /start` named, keyed or keyless."""
    phone = either
    start = await start_websocket(phone, AUTH if phone.api.base_url.host != "127.0.0.1" else {})
    url, token = local(phone, start["wsUrl"]), start["token"]
    if form == "query":
        await accepted(phone, f"{url}?token={token}")
    elif form == "header":
        await accepted(phone, url, {"Authorization": f"Bearer {token}"})
    else:
        await accepted(phone, f"{url}/{token}")
    assert phone.launches == [start["sessionId"]]
    assert await refused(f"{url}?token={token}") == 403  # spent, in any form


async def test_a_keyless_dispatcher_refuses_a_wrong_query_token_instead_of_opening_another_session(
    keyless: Phone,
) -> None:
    start = await start_websocket(keyless, {})
    url, token = local(keyless, start["wsUrl"]), start["token"]
    assert await refused(f"{url}?token={token[:-4]}AAAA") == 403
    assert await refused(url, {"Authorization": "Bearer not-a-token"}) == 403
    assert keyless.launches == []


EVIL_PAGE = {"Origin": "http://attacker.localhost:5000", "Sec-Fetch-Site": "same-site"}


@pytest.mark.parametrize("path", ["/ws/twilio", "/ws/generic/agent.org", "/ws/generic/agent.org?body=e30"])
async def test_a_keyless_dispatcher_opens_no_call_for_a_page_of_another_origin(keyless: Phone, path: str) -> None:
    """Any page may open a WebSocket to loopback (no CORS for upgrades): on a keyless dispatcher,
    where nothing else proves the caller, the page's Origin decides, as for a write."""
    for origin in ("http://attacker.localhost:5000", "https://evil.example", "null"):
        assert await refused(keyless.ws(path), {**EVIL_PAGE, "Origin": origin}) == 403
    assert keyless.launches == []


async def test_a_keyless_dispatcher_still_takes_calls_from_its_own_and_loopback_pages(keyless: Phone) -> None:
    await accepted(keyless, keyless.ws("/ws/generic/agent.org"), {"Origin": f"http://127.0.0.1:{keyless.port}"})
    dev_server = {"Origin": "http://localhost:5173", "Sec-Fetch-Site": "same-site"}
    await accepted(keyless, keyless.ws("/ws/twilio"), dev_server)


async def test_a_token_opens_its_call_from_any_page_where_keys_are_configured(keyed: Phone) -> None:
    """A customer's server starts the session with its key and hands the token to its page, whose
    origin this dispatcher need not list: the token is the proof."""
    token = await start_token(keyed, "twilio")
    await accepted(keyed, keyed.ws(f"/ws/twilio/{token}"), {"Origin": "https://customer.example"})
