"""An eval's WhatsApp call (`POST /phone/whatsapp/eval_calls`) against a real `python -m dispatcher` with
API keys on: the number's own key places an audio-only call and hears the bot, which got `body["whatsapp"]`
in a real call's shape; the session is the key's, marked an eval's, and nothing reaches Meta. Another
key, no key, a number not configured and an offer with a data channel are refused, naming the fix, and
start nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bot.conftest import SPEECH_WAV
from tests.fakes.server import serve
from tests.fakes.whatsapp import PHONE_NUMBER_ID, FakeWhatsApp
from tests.support.audio import BOT_AUDIO_RMS
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.webrtc_client import OfferRejected, WebRTCClient, post_json

pytestmark = pytest.mark.slow  # a real dispatcher, a real bot process importing Pipecat, real WebRTC

BOT = Path(__file__).parents[1] / "bots" / "body.py"
KEY = "whatsapp-eval-key-0123456789"
OTHER_KEY = "whatsapp-eval-other-0123456789"
OTHER_NUMBER = "106540352242999"
ROUTE = "/phone/whatsapp/eval_calls"


@pytest.fixture(scope="module")
def meta() -> Iterator[FakeWhatsApp]:
    with serve(FakeWhatsApp(numbers=(PHONE_NUMBER_ID, OTHER_NUMBER))) as fake:
        yield fake


@pytest.fixture(scope="module")
def dispatcher(meta: FakeWhatsApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    env = {**meta.env(f"{PHONE_NUMBER_ID}=support,{OTHER_NUMBER}=other"), "BOT_FILE": str(BOT),
           "RESERVE_MIN_IDLE": "1", "DISPATCHER_API_KEYS": f"support:{KEY},other:{OTHER_KEY}",
           "BOT_CHANNEL_TOKEN": "whatsapp-eval-channel-token-0123456789"}
    with run_dispatcher(tmp_path_factory.mktemp("whatsapp_eval"), env) as running:
        yield running


def eval_caller(base_url: str, key: str, answers: list[dict[str, Any]], **asked: Any) -> WebRTCClient:
    """The eval's caller: audio alone, as WhatsApp's media servers offer, through the eval entry."""

    async def through_eval_entry(offer: dict[str, Any]) -> dict[str, Any]:
        answer = await post_json(f"{base_url}{ROUTE}", {"sdp": offer["sdp"], **asked},
                                 headers={"Authorization": f"Bearer {key}"})
        answers.append(answer)
        return {"sdp": answer["sdp"], "type": "answer"}

    return WebRTCClient("", signal=through_eval_entry, data_channel=False, connect_timeout=30)


async def running(base_url: str) -> list[str]:
    """Every key's sessions still running (each key lists its own)."""
    found = []
    async with api_client(base_url=base_url, timeout=30) as api:
        for key in (KEY, OTHER_KEY):
            listed = await api.get("/sessions", params={"status": "active"}, headers={"Authorization": f"Bearer {key}"})
            found += [s["session_id"] for s in listed.json()["sessions"] if s.get("status") not in ("ended", "failed")]
    return found


async def test_the_numbers_key_places_an_eval_call_the_bot_answers_as_a_whatsapp_call(
        meta: FakeWhatsApp, dispatcher: DispatcherProcess, tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    answers: list[dict[str, Any]] = []
    async with eval_caller(dispatcher.base_url, KEY, answers, body={"record_to": str(seen)}) as client:
        result = await client.talk(SPEECH_WAV, listen_seconds=3)
        assert result.segments and max(s.peak_rms for s in result.segments) > BOT_AUDIO_RMS, result.summary()
    answer = answers[0]
    assert answer["phone_number_id"] == PHONE_NUMBER_ID  # the key's one number, named by none
    assert "a=fingerprint:sha-384" not in answer["sdp"] and "a=fingerprint:sha-256" in answer["sdp"]
    record = json.loads(seen.read_text())["body"]["whatsapp"]
    assert set(record) == {"call_id", "from", "to", "phone_number_id"}  # a real connect's record (calls.py)
    assert record["phone_number_id"] == PHONE_NUMBER_ID and record["call_id"] == answer["call_id"]
    assert record["call_id"].startswith("eval-")  # never one of Meta's `wacid.` ids
    async with api_client(base_url=dispatcher.base_url, timeout=30, headers={"Authorization": f"Bearer {KEY}"}) as api:
        session = (await api.get(f"/sessions/{answer['session_id']}")).json()
        assert session["eval"] is True, session
        timeline = (await api.get(f"/sessions/{answer['session_id']}/timeline")).json()["events"]
        assert [e.get("simulated") for e in timeline if e["event"] == "whatsapp_call"] == [True], timeline
        assert (await api.delete(f"/sessions/{answer['session_id']}")).status_code in (202, 204)
    assert meta.calls == []  # nothing was sent to Meta for it


@pytest.mark.parametrize(("key", "asked", "status", "code"), [
    (OTHER_KEY, {"phone_number_id": PHONE_NUMBER_ID}, 404, "unknown_whatsapp_number"),  # as one not configured
    (None, {}, 401, None),
    (KEY, {"phone_number_id": "999"}, 404, "unknown_whatsapp_number"),
])
async def test_a_call_not_on_the_keys_own_number_is_refused_and_starts_nothing(
        dispatcher: DispatcherProcess, key: str | None, asked: dict[str, Any], status: int, code: str | None) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(f"{dispatcher.base_url}{ROUTE}", json={"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF "
                                   "111\r\n", **asked}, headers=headers)
    assert response.status_code == status, response.text
    if code is not None:
        error = response.json()["error"]
        assert error["code"] == code and "WHATSAPP_NUMBERS" in error["message"], error
    assert await running(dispatcher.base_url) == []


async def test_an_offer_with_a_data_channel_is_refused_as_whatsapp_makes_none(dispatcher: DispatcherProcess) -> None:
    client = WebRTCClient("", data_channel=True, signal=lambda offer: post_json(
        f"{dispatcher.base_url}{ROUTE}", {"sdp": offer["sdp"]}, headers={"Authorization": f"Bearer {KEY}"}))
    with pytest.raises(OfferRejected) as refused:
        async with client:
            pass
    assert refused.value.status == 422 and refused.value.body["error"]["code"] == "invalid_offer"
    assert "data channel" in refused.value.body["error"]["message"]
    assert await running(dispatcher.base_url) == []
