"""A carrier's call that reaches a region with no room is handed to a region that has one: the
carrier's webhook is answered (and its signature checked) where it arrived, its stream URL is the
other region's with a one-time token minted there, and the audio flows to that region's bot
directly. Two real regional dispatchers (`python -m dispatcher`) on loopback: eu with its one
session taken (stand-in bots), us with a warm phone bot (tests/phone/phone_host.py running
tests/regions/frame_echo_bot.py, which sends the caller's audio back). Twilio's, Telnyx's and
Plivo's webhooks alike. A region with room but only a cold start past PHONE_MAX_WAIT_SECONDS hands
its calls over too, and one whose callers may wait that long keeps them: test_phone_handoff_counts.py,
over its three regions."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import shlex
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlencode
from xml.etree import ElementTree

import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from websockets.exceptions import ConnectionClosed, InvalidStatus

from dispatcher.phone.signatures import twilio_signature
from dispatcher.regions.calls import CALLS_PATH
from dispatcher.regions.config import Regions, region_tag
from dispatcher.regions.signing import RegionSigner
from tests.fakes.carriers import FRAME_SAMPLES, CarrierCall
from tests.regions.support import SECRET, regions, until
from tests.regions.test_spill_over import AUTH, peer_view
from tests.support.audio import rms
from tests.support.phone_dispatcher import PHONE_HOST
from tests.support.processes import DispatcherProcess

TWILIO_TOKEN = "twilio-auth-token-of-the-account"
PLIVO_TOKEN = "plivo-auth-token-of-the-account"
TELNYX = Ed25519PrivateKey.generate()
TELNYX_PUBLIC = base64.b64encode(TELNYX.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ECHO_BOT = Path(__file__).with_name("frame_echo_bot.py")


@dataclass
class Pair:
    urls: dict[str, str]
    eu: DispatcherProcess
    us: DispatcherProcess
    reports: Path  # what us's bots say they were given


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("phone-regions")
    reports = root / "reports"
    reports.mkdir()
    # One token key in both regions: a token minted in one must still open nothing in the other.
    common = {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "PLIVO_AUTH_TOKEN": PLIVO_TOKEN, "TELNYX_PUBLIC_KEY": TELNYX_PUBLIC,
              "PHONE_TOKEN_SECRET": "phone-token-secret-of-both-" + "r" * 10}
    eu = {**common, "MAX_CONCURRENT_SESSIONS": "1"}
    us = {**common, "LOCAL_BOT_COMMAND": shlex.join(PHONE_HOST), "PHONE_USER_BOT": str(ECHO_BOT),
          "PHONE_TEST_REPORTS": str(reports), "LOCAL_BOT_ENV": "PHONE_USER_BOT,PHONE_TEST_REPORTS",
          "RESERVE_MIN_IDLE": "1", "RESERVE_MAX_IDLE": "2"}
    with regions(root, ("eu", "us"), {"eu": eu, "us": us}) as (urls, running):
        taken = httpx.post(f"{running['eu'].base_url}/start", json={"body": {}}, headers=AUTH, timeout=30)
        assert taken.status_code == 201 and taken.json()["region"] == "eu", taken.text  # eu's one session
        yield Pair(urls, running["eu"], running["us"], reports)


def us_can_take_a_call(pair: Pair | DispatcherProcess) -> bool:
    """Whether eu (or the region given) has read that us has room and an idle bot for a call."""
    seen = peer_view(pair.eu if isinstance(pair, Pair) else pair, "us")
    capacity = seen.get("capacity") or {}
    return bool(seen.get("reachable") and capacity.get("room") and capacity.get("warm", {}).get("websocket"))


def twilio_webhook(region: DispatcherProcess) -> httpx.Response:
    """A call's webhook at `region`, signed as Twilio signs it, and its answer."""
    call = {"CallSid": "CA" + secrets.token_hex(16), "From": "+14155550100", "To": "+14155550199"}
    signature = twilio_signature(TWILIO_TOKEN, f"{region.base_url}/phone/twilio", call.items())
    return httpx.post(f"{region.base_url}/phone/twilio", content=urlencode(call),
                      headers={**FORM, "X-Twilio-Signature": signature}, timeout=10)


def stream_url(answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text
    stream = ElementTree.fromstring(answer.text).find("./Connect/Stream")
    assert stream is not None, answer.text
    return str(stream.get("url"))


def other_carriers_webhook(pair: Pair, carrier: str) -> str:
    """A Plivo or Telnyx call's webhook at eu, signed as the carrier signs it; the stream URL answered."""
    if carrier == "plivo":
        call, nonce = {"CallUUID": secrets.token_hex(8), "From": "14155550100"}, secrets.token_hex(8)
        signed = f"{pair.urls['eu']}/phone/plivo?" + "".join(k + v for k, v in sorted(call.items())) + f".{nonce}"
        digest = base64.b64encode(hmac.new(PLIVO_TOKEN.encode(), signed.encode(), hashlib.sha256).digest()).decode()
        headers = {"X-Plivo-Signature-V3": digest, "X-Plivo-Signature-V3-Nonce": nonce}
    else:
        call, sent = {"CallSid": f"v3:{secrets.token_hex(8)}", "From": "+14155550100"}, str(int(time.time()))
        body = urlencode(call).encode()
        headers = {"telnyx-signature-ed25519": base64.b64encode(TELNYX.sign(sent.encode() + b"|" + body)).decode(),
                   "telnyx-timestamp": sent}
    answer = httpx.post(f"{pair.eu.base_url}/phone/{carrier}", content=urlencode(call),
                        headers={**FORM, **headers}, timeout=10)
    assert answer.status_code == 200, answer.text
    stream = ElementTree.fromstring(answer.text).find("./Stream" if carrier == "plivo" else "./Connect/Stream")
    assert stream is not None, answer.text
    return str(stream.text if carrier == "plivo" else stream.get("url")).strip()


def ws_base(url: str) -> str:
    return "ws://" + url.split("://", 1)[1]


async def refused(url: str) -> str:
    """The JSON error a refused stream upgrade is answered with."""
    with pytest.raises(InvalidStatus) as denied:
        await CarrierCall("twilio", url).open()
    assert denied.value.response.status_code == 403
    return json.loads(denied.value.response.body or b"{}")["error"]["message"]


def tone() -> bytes:
    samples = (8000 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.int16)
    return samples.tobytes()


async def echoed_tone(call: CarrierCall, timeout: float) -> None:
    """The caller's tone comes back from the bot (the line's silence comes back first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = await call.next_bot_audio(timeout=timeout)
        if len(frame) >= FRAME_SAMPLES * 2 and rms(np.frombuffer(frame, dtype=np.int16)) > 1000:
            return
    raise AssertionError("the caller's audio never came back from the bot")


async def talk(url: str) -> None:
    """A carrier's call at `url` that the bot answers (its audio comes back), then hung up."""
    call = CarrierCall("twilio", url)
    await call.open()
    try:
        await call.handshake()
        await call.say(tone())
        await echoed_tone(call, timeout=30)
    finally:
        await call.hang_up()


async def test_a_call_eu_has_no_room_for_streams_to_us_with_a_token_good_once_there(pair: Pair) -> None:
    until(lambda: us_can_take_a_call(pair), 60)  # us's phone bot is up, and eu has read so
    answer = twilio_webhook(pair.eu)
    url = stream_url(answer)
    assert url.startswith(ws_base(pair.urls["us"]) + "/ws/twilio/"), url  # the audio goes to us directly
    token = url.rsplit("/", 1)[1]

    assert "token_wrong_region" in await refused(f"{ws_base(pair.urls['eu'])}/ws/twilio/{token}")
    call = CarrierCall("twilio", url, custom={"from_number": "+14155550100"})
    await call.open()
    try:
        await call.handshake()
        await call.say(tone())
        await echoed_tone(call, timeout=30)  # heard by us's bot, and back
        assert "token_replayed" in await refused(url)  # the token opened one call
    finally:
        await call.hang_up()

    (report,) = [json.loads(path.read_text()) for path in pair.reports.glob("*.json")]
    session_id = report["session_id"]
    assert session_id.startswith(region_tag("us"))  # the session is us's, and its id says so
    assert f"handed to region us (session {session_id}): at_capacity" in pair.eu.log()
    # Its timeline at us: where the call's webhook arrived, and why it was handed over.
    until(lambda: f"phone call {session_id} (twilio): handed off from region eu (at_capacity)" in pair.us.log(), 60)


async def test_a_call_token_asked_of_eu_with_no_room_is_minted_by_us_for_us(pair: Pair) -> None:
    """`POST /start` with a carrier's transport (Pipecat Cloud's token answer) spills over like any
    start: the token, its URL and the session are us's, and the call is counted once, at eu."""
    until(lambda: us_can_take_a_call(pair), 60)
    answer = httpx.post(f"{pair.eu.base_url}/start", json={"transport": "twilio", "body": {"lang": "fr"}},
                        headers=AUTH, timeout=30)
    assert answer.status_code == 201, answer.text
    started = answer.json()
    assert started["wsUrl"] == ws_base(pair.urls["us"]) + "/ws/twilio", started  # us's own URL, not eu's Host
    assert started["sessionId"].startswith(region_tag("us"))
    assert "token_wrong_region" in await refused(f"{ws_base(pair.urls['eu'])}/ws/twilio/{started['token']}")
    await talk(f"{started['wsUrl']}/{started['token']}")
    report = json.loads((pair.reports / f"{started['sessionId']}.json").read_text())
    assert report["session_id"] == started["sessionId"]  # the key's session, started by us's bot
    mine = httpx.get(f"{pair.eu.base_url}/sessions/{started['sessionId']}", headers=AUTH, timeout=10)
    assert mine.status_code == 200 and mine.json()["region"] == "us", mine.text  # the key's, read from eu
    until(lambda: f"phone call {started['sessionId']} (twilio): handed off from region eu (at_capacity)"
          in pair.us.log(), 60)  # counted where it arrived: us does not count it as its own start
    until(lambda: us_can_take_a_call(pair), 60)  # a region that can take the call keeps it
    home = httpx.post(f"{pair.us.base_url}/start", json={"transport": "twilio"}, headers=AUTH, timeout=30)
    assert home.status_code == 201 and home.json()["wsUrl"] == ws_base(pair.urls["us"]) + "/ws/twilio", home.text
    assert "via" not in json.loads(base64.urlsafe_b64decode(home.json()["token"].split(".")[0] + "=="))


@pytest.mark.parametrize("carrier", ["plivo", "telnyx"])
def test_plivo_and_telnyx_calls_are_handed_over_the_same_way(pair: Pair, carrier: str) -> None:
    until(lambda: us_can_take_a_call(pair), 60)
    assert other_carriers_webhook(pair, carrier).startswith(f"{ws_base(pair.urls['us'])}/ws/{carrier}/")


def test_a_region_request_for_a_stream_is_refused_unsigned_wrongly_signed_or_replayed(pair: Pair) -> None:
    calls = f"{pair.us.base_url}{CALLS_PATH}"
    body = json.dumps({"carrier": "twilio", "reason": "at_capacity"}).encode()
    unsigned = httpx.post(calls, content=body, timeout=5)
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "region_unauthenticated"
    frozen = MappingProxyType(pair.urls)
    wrong = RegionSigner(Regions("eu", frozen, b"w" * 32)).headers("us", "POST", CALLS_PATH, body)
    forged = httpx.post(calls, content=body, headers=wrong, timeout=5)
    assert forged.status_code == 401 and "does not match" in forged.json()["error"]["message"]
    signed = RegionSigner(Regions("eu", frozen, SECRET.encode())).headers("us", "POST", CALLS_PATH, body)
    taken = httpx.post(calls, content=body, headers=signed, timeout=5)  # the control: signed, once
    assert taken.status_code == 200 and taken.json()["region"] == "us", taken.text
    assert taken.json()["stream"].startswith(ws_base(pair.urls["us"]) + "/ws/twilio/")
    replayed = httpx.post(calls, content=body, headers=signed, timeout=5)
    assert replayed.status_code == 401 and "already taken" in replayed.json()["error"]["message"]
    changed = RegionSigner(Regions("eu", frozen, SECRET.encode())).headers("us", "POST", CALLS_PATH, body)
    other = httpx.post(calls, content=body.replace(b"at_capacity", b"cold_start_over_max_wait"), headers=changed,
                       timeout=5)
    assert other.status_code == 401 and "does not match" in other.json()["error"]["message"]


async def test_a_call_while_us_hangs_is_answered_by_eu_as_when_full(pair: Pair) -> None:
    until(lambda: us_can_take_a_call(pair), 60)
    assert stream_url(twilio_webhook(pair.eu)).startswith(ws_base(pair.urls["us"]))  # handed over while us answers
    os.kill(pair.us.process.pid, signal.SIGSTOP)  # us accepts connections and answers none
    try:
        # Never left hanging on us: answered while us still hangs (eu's 1 s deadline on it), where
        # waiting on us would end in the webhook client's timeout; no wall time is asserted.
        answer = twilio_webhook(pair.eu)
        url = stream_url(answer)
        assert url.startswith(ws_base(pair.urls["eu"]) + "/ws/twilio/"), url  # today's answer when full
        call = CarrierCall("twilio", url)
        await call.open()
        await call.handshake(stream=False)
        assert await asyncio.wait_for(closed_code(call), 30) == 1011  # eu has no room: the call fails there
        until(lambda: not peer_view(pair.eu, "us").get("reachable"), 60)
        answer = twilio_webhook(pair.eu)  # and once eu knows us is gone, without asking it
        assert stream_url(answer).startswith(ws_base(pair.urls["eu"]))
    finally:
        os.kill(pair.us.process.pid, signal.SIGCONT)


async def closed_code(call: CarrierCall) -> int | None:
    assert call.ws is not None
    try:
        while True:
            await call.ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None

