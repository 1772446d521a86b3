"""The WhatsApp path's small parts on their own: its settings, Meta's signature, the webhook's call
events, and what Meta takes of a bot's SDP answer."""

from __future__ import annotations

import json
import logging

import pytest

from dispatcher.errors import ApiError
from dispatcher.machines.bot_variables import dispatcher_own
from dispatcher.settings import SettingsError
from dispatcher.whatsapp.answer_sdp import for_whatsapp
from dispatcher.whatsapp.events import call_events
from dispatcher.whatsapp.settings import NumberRoute, WhatsAppSettings
from dispatcher.whatsapp.signature import check_signature, sign
from tests.fakes.whatsapp import APP_SECRET, PHONE_NUMBER_ID, FakeWhatsApp
from tests.phone.test_whatsapp_webhook import OFFER

FULL = {"WHATSAPP_ACCESS_TOKEN": "t", "WHATSAPP_APP_SECRET": "s", "WHATSAPP_VERIFY_TOKEN": "v"}


def test_no_whatsapp_setting_means_no_whatsapp_calls() -> None:
    assert WhatsAppSettings.from_env({}, keyed=True) is None


def test_numbers_name_the_key_and_release_their_calls_run_as() -> None:
    settings = WhatsAppSettings.from_env({**FULL, "WHATSAPP_NUMBERS": "1065=support@stable, 2077=sales"}, keyed=True)
    assert settings is not None
    assert dict(settings.numbers) == {"1065": NumberRoute("1065", "support", "stable"),
                                      "2077": NumberRoute("2077", "sales", None)}
    assert settings.graph_url == "https://graph.facebook.com/v23.0"


@pytest.mark.parametrize(("env", "said"), [
    ({"WHATSAPP_APP_SECRET": "s"}, "set WHATSAPP_ACCESS_TOKEN, WHATSAPP_VERIFY_TOKEN, WHATSAPP_NUMBERS"),
    ({**FULL, "WHATSAPP_NUMBERS": "1065"}, "names no API key"),
    ({**FULL, "WHATSAPP_NUMBERS": "+1 555=support"}, "is not a phone number ID"),
    ({**FULL, "WHATSAPP_NUMBERS": "1065=Support"}, "is not a key name"),
    ({**FULL, "WHATSAPP_NUMBERS": "1065=a,1065=b"}, "names 1065 twice"),
    ({**FULL, "WHATSAPP_NUMBERS": "1065=a", "WHATSAPP_GRAPH_URL": "http://graph.example.com"}, "https://"),
])
def test_a_wrong_whatsapp_setting_stops_the_start_naming_the_way(env: dict[str, str], said: str) -> None:
    with pytest.raises(SettingsError, match=said.replace("+", r"\+")):
        WhatsAppSettings.from_env(env, keyed=True)


def test_a_keyless_local_dispatcher_takes_a_bare_number() -> None:
    settings = WhatsAppSettings.from_env({**FULL, "WHATSAPP_NUMBERS": "1065"}, keyed=False)
    assert settings is not None and settings.numbers["1065"] == NumberRoute("1065", None)


def test_meta_s_signature_is_checked_on_the_raw_body() -> None:
    body = b'{"object":"whatsapp_business_account"}'
    check_signature(APP_SECRET, body, sign(APP_SECRET, body))
    for header, status in ((None, 401), ("", 401), ("sha256=00", 403), (sign("other", body), 403),
                           (sign(APP_SECRET, body + b" "), 403)):
        with pytest.raises(ApiError) as refused:
            check_signature(APP_SECRET, body, header)
        assert refused.value.status == status


def test_a_connect_and_a_terminate_are_read_as_meta_sends_them() -> None:
    fake = FakeWhatsApp()
    call = fake.ring(OFFER)
    (connect,) = call_events(json.loads(fake.connect_webhook(call)[0]))
    (terminate,) = call_events(json.loads(fake.terminate_webhook(call, "REJECTED")[0]))
    assert (connect.event, connect.call_id, connect.caller, connect.phone_number_id, connect.offer) == (
        "connect", call.call_id, call.caller, PHONE_NUMBER_ID, OFFER)
    assert (terminate.event, terminate.status, terminate.offer) == ("terminate", "REJECTED", None)
    assert "sdp" not in str(connect.shown())


@pytest.mark.parametrize(("payload", "where"), [
    ({"object": "whatsapp_business_account"}, "entry"),
    ({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "calls", "value": {
        "metadata": {"phone_number_id": "1"}, "calls": [{"id": "c", "event": "connect"}]}}]}]}, "calls[0].from"),
    ({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "calls", "value": {
        "metadata": {"phone_number_id": "1"}, "calls": [{"id": "c", "from": "1", "to": "2", "timestamp": "3",
                                                         "event": "connect", "session": {"sdp_type": "offer",
                                                                                         "sdp": 5}}]}}]}]}, "sdp"),
    ({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "calls", "value": {
        "calls": []}}]}]}, "value.metadata"),
    ({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "calls", "value": {
        "metadata": {"phone_number_id": "1"}, "calls": [{"id": "c\nforged log line", "from": "1", "to": "2",
                                                         "event": "terminate"}]}}]}]}, "calls[0].id"),
])
def test_a_malformed_call_event_is_skipped_and_logged_naming_where(
        payload: dict[str, object], where: str, caplog: pytest.LogCaptureFixture) -> None:
    # Refusing the delivery would have Meta retry it for days, and the calls batched with it never taken.
    with caplog.at_level(logging.WARNING, logger="dispatcher.whatsapp"):
        assert call_events(payload) == []
    assert where in caplog.text


def test_a_call_status_change_is_skipped_and_the_connect_batched_with_it_is_read() -> None:
    # A business-initiated call's progress, as Meta sends it to the same URL: `statuses[]`, no `calls`.
    fake = FakeWhatsApp()
    call = fake.ring(OFFER)
    payload = json.loads(fake.connect_webhook(call)[0])
    status = {"field": "calls", "value": {"messaging_product": "whatsapp", "metadata": {
        "display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID}, "statuses": [{
            "id": "wacid.other", "timestamp": "1671644824", "type": "call", "status": "RINGING",
            "recipient_id": "16315553601"}]}}
    malformed = {"field": "calls", "value": {"metadata": {"phone_number_id": PHONE_NUMBER_ID}, "calls": "x"}}
    payload["entry"][0]["changes"][:0] = [status, malformed]
    (connect,) = call_events(payload)
    assert (connect.event, connect.call_id) == ("connect", call.call_id)


def test_only_the_sha_256_fingerprint_of_an_answer_reaches_meta() -> None:
    answer = OFFER + "a=fingerprint:sha-384 AB\r\na=fingerprint:sha-512 CD\r\n"
    kept = for_whatsapp(answer.replace("\r\n", "\n"))
    assert "sha-384" not in kept and "sha-512" not in kept and "a=fingerprint:sha-256 AB:" in kept
    assert kept.endswith("\r\n") and "\n" not in kept.replace("\r\n", "")
    with pytest.raises(ValueError, match="SHA-256"):
        for_whatsapp("v=0\r\na=fingerprint:sha-512 CD\r\n")


@pytest.mark.parametrize("name", ["WHATSAPP_ACCESS_TOKEN", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN"])
def test_meta_s_credentials_never_reach_a_bot(name: str) -> None:
    assert dispatcher_own(name)  # not inherited by a local bot, refused in a stack's botSecrets
