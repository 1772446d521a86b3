"""The carrier's own copy of a call (PHONE_CARRIER_RECORDING): the TwiML/TeXML answer starts a
dual-channel recording only when the setting and the recording policy say so; its status callback
is linked in the session's artifacts only when the carrier signed it, for the session it names."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest

import dispatcher.observability.tracing as tracing
from dispatcher.phone.carrier_recording import MAX_LINKED, callback_path
from dispatcher.phone.settings import PhoneSettings
from dispatcher.phone.signatures import twilio_signature
from dispatcher.settings import SettingsError, hash_api_key
from tests.dispatcher.api.test_webhooks import CALL, FORM, telnyx_headers, twilio_headers
from tests.support.phone_dispatcher import PUBLIC, TWILIO_TOKEN, Phone, phone_dispatcher

ADMIN_KEY = "carrier-recording-admin-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
TWILIO_DONE = {"AccountSid": "AC1", "CallSid": CALL["CallSid"], "RecordingSid": "RE" + "a" * 32,
               "RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE" + "a" * 32,
               "RecordingStatus": "completed", "RecordingDuration": "42", "RecordingChannels": "2",
               "RecordingSource": "StartCallRecordingTwiML"}

Dispatcher = Callable[..., Any]


@pytest.fixture
def dispatcher(tmp_path: Path) -> Dispatcher:
    @asynccontextmanager
    async def started(carriers: str, recording: str = "on", rules: str = "") -> AsyncIterator[Phone]:
        env = {"PHONE_CARRIER_RECORDING": carriers, "RECORDING": recording, "RECORDING_RULES": rules,
               "RECORDING_DESTINATION": str(tmp_path)}
        async for phone in phone_dispatcher(keyed=True, phone_env=env,
                                            admin_key_hashes=frozenset({hash_api_key(ADMIN_KEY)})):
            yield phone

    return started


async def _twilio_answer(phone: Phone, call: dict[str, str] = CALL) -> ElementTree.Element:
    answer = await phone.api.post("/phone/twilio", content=urlencode(call), headers=twilio_headers(call))
    assert answer.status_code == 200, answer.text
    return ElementTree.fromstring(answer.text)


def _callback_path(recording: ElementTree.Element) -> str:
    url = recording.get("recordingStatusCallback", "")
    assert url.startswith(f"{PUBLIC}/phone/"), url
    return url.removeprefix(PUBLIC)


async def _session_of(phone: Phone, path: str, release: str = "v1") -> str:
    """The session the callback URL names, opened as the carrier's stream would open it (a timeline
    starts with its `requested` event; the bot itself is not what is tested here)."""
    session_id = path.split("/")[4]
    timeline = phone.app.state.voicefleet.sessions.timeline
    timeline.note(session_id, "requested", transport="websocket", release=release)
    await timeline.settled()
    return session_id


async def _session_path(phone: Phone, path: str, release: str = "v1") -> str:
    await _session_of(phone, path, release)
    return path


async def _twilio_callback(phone: Phone, path: str, form: dict[str, str], token: str = TWILIO_TOKEN,
                           signed: bool = True) -> int:
    headers = dict(FORM)
    if signed:
        headers["X-Twilio-Signature"] = twilio_signature(token, PUBLIC + path, form.items())
    response = await phone.api.post(path, content=urlencode(form), headers=headers)
    await phone.app.state.voicefleet.sessions.timeline.settled()
    return response.status_code


async def _listed(phone: Phone, session_id: str) -> dict[str, Any] | None:
    response = await phone.api.get(f"/sessions/{session_id}/artifacts", headers=ADMIN)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_without_the_setting_the_answer_records_nothing(dispatcher: Dispatcher) -> None:
    async with dispatcher("off") as phone:
        assert (await _twilio_answer(phone)).find("./Start") is None


# A release rule counts although the call's release is chosen only when its stream opens: the
# carrier records from the first second, whichever release the call then gets.
@pytest.mark.parametrize(("recording", "rules"), [("off", ""), ("consent", ""), ("on", "release:quiet audio=consent"),
                                                  ("on", "release:quiet audio=off")])
async def test_a_policy_that_keeps_no_audio_gets_no_carrier_recording(dispatcher: Dispatcher, recording: str,
                                                                      rules: str) -> None:
    async with dispatcher("on", recording, rules) as phone:
        assert (await _twilio_answer(phone)).find("./Start") is None


async def test_twilio_records_both_channels_untrimmed_before_the_stream(dispatcher: Dispatcher) -> None:
    async with dispatcher("twilio") as phone:
        answer = await _twilio_answer(phone)
    assert [child.tag for child in answer] == ["Start", "Connect"]  # recording first, then the stream
    recording = answer.find("./Start/Recording")
    assert recording is not None
    assert (recording.get("channels"), recording.get("track"), recording.get("trim")) == ("dual", "both", "do-not-trim")
    assert recording.get("recordingStatusCallbackEvent") == "completed absent"
    assert _callback_path(recording).startswith("/phone/twilio/recordings/")


async def test_a_signed_twilio_callback_is_linked_in_the_artifacts(dispatcher: Dispatcher) -> None:
    async with dispatcher("twilio") as phone:
        path = _callback_path((await _twilio_answer(phone)).find("./Start/Recording"))  # type: ignore[arg-type]
        session_id = await _session_of(phone, path)
        assert await _listed(phone, session_id) is None
        assert await _twilio_callback(phone, path, TWILIO_DONE) == 204
        listing = await _listed(phone, session_id)
        events = await phone.app.state.voicefleet.sessions.timeline.read(session_id)
    assert listing is not None
    [linked] = listing["carrier_recordings"]
    assert linked["kind"] == "carrier_recording"
    assert (linked["carrier"], linked["recording_sid"], linked["url"]) == (
        "twilio", TWILIO_DONE["RecordingSid"], TWILIO_DONE["RecordingUrl"])
    assert (linked["duration_seconds"], linked["channels"], linked["call_sid"]) == (42, 2, CALL["CallSid"])
    assert TWILIO_TOKEN not in str(listing)
    assert [e["event"] for e in events] == ["requested", "carrier_recording_ready"]


async def test_a_release_whose_rule_keeps_no_audio_links_nothing(dispatcher: Dispatcher) -> None:
    async with dispatcher("twilio", "on", "release:quiet audio=off") as phone:
        # A recording the carrier made anyway (asked for before this rule was set): its callback URL as handed out.
        key = phone.app.state.voicefleet.phone.settings.token_key
        path = await _session_path(phone, callback_path(key, "twilio", "1" * 24), release="quiet")
        session_id = path.split("/")[4]
        assert await _twilio_callback(phone, path, TWILIO_DONE) == 204
        assert await _listed(phone, session_id) is None
        events = await phone.app.state.voicefleet.sessions.timeline.read(session_id)
    assert [(e["event"], e.get("recording_sid")) for e in events] == [
        ("requested", None), ("carrier_recording_not_kept", TWILIO_DONE["RecordingSid"])]


async def test_unsigned_forged_and_misdirected_callbacks_link_nothing(dispatcher: Dispatcher) -> None:
    async with dispatcher("twilio") as phone:
        path = _callback_path((await _twilio_answer(phone)).find("./Start/Recording"))  # type: ignore[arg-type]
        other_call = {**CALL, "CallSid": "CA" + "0" * 31 + "2"}
        other = _callback_path((await _twilio_answer(phone, other_call)).find("./Start/Recording"))  # type: ignore[arg-type]
        session_id = await _session_of(phone, path)
        assert await _twilio_callback(phone, path, TWILIO_DONE, signed=False) == 403
        assert await _twilio_callback(phone, path, TWILIO_DONE, token="not-the-auth-token") == 403
        # Signed by Twilio, but this URL was never handed out: the other call's MAC on this session.
        misdirected = path.rsplit("/", 1)[0] + "/" + other.rsplit("/", 1)[1]
        assert await _twilio_callback(phone, misdirected, TWILIO_DONE) == 403
        assert await _listed(phone, session_id) is None
        # The genuine one once, and its replay refused.
        assert await _twilio_callback(phone, path, TWILIO_DONE) == 204
        assert await _twilio_callback(phone, path, TWILIO_DONE) == 403
        listing = await _listed(phone, session_id)
    assert listing is not None and len(listing["carrier_recordings"]) == 1


async def test_a_callback_for_a_carrier_not_recording_is_not_found(dispatcher: Dispatcher) -> None:
    async with dispatcher("telnyx") as phone:
        assert (await _twilio_answer(phone)).find("./Start") is None
        status = await _twilio_callback(phone, "/phone/twilio/recordings/x/y", TWILIO_DONE)
    assert status == 404


async def test_telnyx_records_and_its_signed_callback_binds_to_the_url_it_was_given(dispatcher: Dispatcher) -> None:
    async with dispatcher("on") as phone:
        body = urlencode({"CallSid": "v3:1", "From": "+14155550100"}).encode()
        answer = await phone.api.post("/phone/telnyx", content=body, headers=telnyx_headers(phone, body,
                                                                                           int(time.time())))
        texml = ElementTree.fromstring(answer.text)
        recording = texml.find("./Start/Recording")
        assert recording is not None and recording.get("channels") == "dual" and recording.get("trim") is None
        path = _callback_path(recording)
        session_id = await _session_of(phone, path)
        done = urlencode({"AccountSid": "acct", "CallSid": "v3:1", "RecordingSid": "35094891-3290-4142-b2c2-b2ed",
                          "RecordingUrl": "https://recordings.telnyx.example/35094891.mp3",
                          "RecordingStatus": "completed", "RecordingDuration": "7",
                          "RecordingChannels": "2"}).encode()
        now = int(time.time())
        forged = await phone.api.post(path, content=done, headers={**telnyx_headers(phone, done, now),
                                                                   "telnyx-signature-ed25519": base64.b64encode(
                                                                       b"x" * 64).decode()})
        elsewhere = path.rsplit("/", 2)[0] + "/" + "0" * 24 + "/" + path.rsplit("/", 1)[1]
        misdirected = await phone.api.post(elsewhere, content=done, headers=telnyx_headers(phone, done, now))
        good = await phone.api.post(path, content=done, headers=telnyx_headers(phone, done, now))
        await phone.app.state.voicefleet.sessions.timeline.settled()
        listing = await _listed(phone, session_id)
    assert (forged.status_code, misdirected.status_code, good.status_code) == (403, 403, 204)
    assert misdirected.json()["error"]["code"] == "callback_forged"
    assert listing is not None
    assert [(r["carrier"], r["duration_seconds"]) for r in listing["carrier_recordings"]] == [("telnyx", 7)]


@pytest.mark.parametrize(("env", "message"), [
    ({"PHONE_CARRIER_RECORDING": "twilio"}, "set TWILIO_AUTH_TOKEN"),
    ({"PHONE_CARRIER_RECORDING": "plivo"}, "plivo cannot record"),
])
def test_a_carrier_recording_without_its_signing_credential_is_a_settings_error(env: dict[str, str],
                                                                                 message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        PhoneSettings.from_env(env, keyless=False, bot_channel_token=None)


async def test_a_recording_is_linked_once_and_a_session_links_a_few(dispatcher: Dispatcher) -> None:
    """Signed again (a field more: another signature, past the replay record) the same recording is
    not listed twice, and however many recordings the carrier reports, the session lists a few."""
    async with dispatcher("twilio") as phone:
        path = _callback_path((await _twilio_answer(phone)).find("./Start/Recording"))  # type: ignore[arg-type]
        session_id = await _session_of(phone, path)
        assert await _twilio_callback(phone, path, TWILIO_DONE) == 204
        assert await _twilio_callback(phone, path, {**TWILIO_DONE, "ErrorCode": "0"}) == 204
        once = await _listed(phone, session_id)
        for n in range(MAX_LINKED + 3):
            assert await _twilio_callback(phone, path, {**TWILIO_DONE, "RecordingSid": f"RE{n:032x}"}) == 204
        many = await _listed(phone, session_id)
    assert once is not None and len(once["carrier_recordings"]) == 1
    assert many is not None and len(many["carrier_recordings"]) == MAX_LINKED


async def test_a_pre_signed_recording_url_is_not_kept(dispatcher: Dispatcher) -> None:
    """Telnyx's RecordingUrl is signed for minutes: its query is a credential, not a lasting link."""
    async with dispatcher("twilio") as phone:
        path = _callback_path((await _twilio_answer(phone)).find("./Start/Recording"))  # type: ignore[arg-type]
        session_id = await _session_of(phone, path)
        signed = "https://s3.amazonaws.com/telnyx-recordings/r.mp3?X-Amz-Signature=abc&X-Amz-Credential=AKIA"
        assert await _twilio_callback(phone, path, {**TWILIO_DONE, "RecordingUrl": signed}) == 204
        listing = await _listed(phone, session_id)
    assert listing is not None
    [linked] = listing["carrier_recordings"]
    assert "url" not in linked and linked["recording_sid"] == TWILIO_DONE["RecordingSid"]
    assert "X-Amz" not in str(listing)


async def test_a_made_up_carrier_is_not_found_before_it_names_a_span(dispatcher: Dispatcher,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The path's carrier is unverified text: it becomes a span attribute only when it is a known carrier."""
    named: list[object] = []
    step = tracing.step

    def spied(name: str, **attributes: object) -> Any:
        named.extend(attributes.values())
        return step(name, **attributes)

    monkeypatch.setattr(tracing, "step", spied)
    async with dispatcher("twilio") as phone:
        response = await phone.api.post("/phone/" + "x" * 300 + "/recordings/s/m", content="", headers=FORM)
    assert response.status_code == 404
    assert not any("x" * 300 in str(value) for value in named)
