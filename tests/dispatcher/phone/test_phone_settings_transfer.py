"""The transfer's settings, checked at start: where Twilio's REST API is (it carries the account's
Basic credentials, so https, or plain http to a loopback fake) and where calls may go."""

from __future__ import annotations

import pytest

from dispatcher.phone.settings import PhoneSettings
from dispatcher.settings import SettingsError


def phone(**env: str) -> PhoneSettings:
    return PhoneSettings.from_env(env, keyless=False, bot_channel_token=None)


@pytest.mark.parametrize("url", ["https://api.twilio.com", "https://api.dublin.ie1.twilio.com/",
                                 "http://127.0.0.1:8123", "http://localhost:8123", "http://[::1]:8123"])
def test_twilio_api_url_is_https_or_a_loopback_fake(url: str) -> None:
    assert phone(TWILIO_API_URL=url).twilio_api_url == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://api.twilio.com", "http://10.0.0.5:8080", "ftp://api.twilio.com",
                                 "api.twilio.com", "http://127.0.0.1.attacker.example"])
def test_twilio_api_url_in_clear_text_to_another_host_is_refused(url: str) -> None:
    with pytest.raises(SettingsError, match="TWILIO_API_URL.*https://"):
        phone(TWILIO_API_URL=url)


def test_transfer_targets_are_read_and_a_bad_one_is_named() -> None:
    assert phone().transfer_targets is None
    targets = phone(PHONE_TRANSFER_TARGETS="+14155550123,+1415*").transfer_targets
    assert targets is not None and targets.patterns == ("+14155550123", "+1415*")
    with pytest.raises(SettingsError, match="PHONE_TRANSFER_TARGETS.*'4155550123'"):
        phone(PHONE_TRANSFER_TARGETS="4155550123")


@pytest.mark.parametrize(("url", "server"), [
    ("https://api.telnyx.com/v2", "https://api.telnyx.com"), ("https://api.telnyx.com/v2/", "https://api.telnyx.com"),
    ("http://127.0.0.1:8123/x", "http://127.0.0.1:8123"), ("https://api.telnyx.com?x=1", "https://api.telnyx.com"),
])
def test_a_telnyx_api_url_with_a_path_is_refused_naming_the_server_alone(url: str, server: str) -> None:
    assert phone(TELNYX_API_URL="https://api.telnyx.com/").telnyx_api_url == "https://api.telnyx.com"
    with pytest.raises(SettingsError, match=f"TELNYX_API_URL.*server alone, such as {server}:"):
        phone(TELNYX_API_URL=url)


def test_the_telnyx_transfer_key_has_a_name_no_bot_is_given() -> None:
    """TELNYX_API_KEY is what Pipecat's serializer reads in a bot (a local bot may be handed it): the
    dispatcher's key, which redirects any call of the account, is read under its own name alone."""
    assert phone(TELNYX_API_KEY="the-bots-key").telnyx_api_key is None
    assert phone(TELNYX_TRANSFER_API_KEY="the-dispatchers-key").telnyx_api_key == "the-dispatchers-key"


@pytest.mark.parametrize("auth_id", ["MA-0001", "ＭＡ１２３ä", "MA 1"])
def test_a_plivo_auth_id_other_than_ascii_letters_and_digits_is_refused_at_start(auth_id: str) -> None:
    # str.isalnum() alone takes full-width and accented letters, which Plivo's Basic auth never would.
    with pytest.raises(SettingsError, match="PLIVO_AUTH_ID must be the Auth ID the Plivo console shows"):
        phone(PLIVO_AUTH_ID=auth_id)
