"""A URL every request to which carries a credential (`credentialed_url`: the carriers' API URLs, WhatsApp's
Graph URL, the Kubernetes API servers): https, plain http to a loopback fake only, and never a user or
password of its own, refused without showing it."""

from __future__ import annotations

import pytest

from dispatcher.phone.settings import PhoneSettings
from dispatcher.settings import SettingsError, credentialed_url


@pytest.mark.parametrize("url", ["https://api.twilio.com", "http://127.0.0.1:8123", "http://localhost:9/v1"])
def test_https_or_a_loopback_fake_is_taken_as_given(url: str) -> None:
    assert credentialed_url("TWILIO_API_URL", url, "the account's credentials") == url


@pytest.mark.parametrize("url", ["http://api.twilio.com", "ftp://api.twilio.com", "api.twilio.com"])
def test_anything_else_is_refused_naming_https(url: str) -> None:
    with pytest.raises(SettingsError, match=r"TWILIO_API_URL=.* must be https:// \(plain http:// only to a loopback"):
        credentialed_url("TWILIO_API_URL", url, "the account's credentials")


@pytest.mark.parametrize("url", ["https://AC123:t0ken@api.twilio.com/2010", "http://AC123:t0ken@127.0.0.1:8123",
                                 "https://t0ken@api.twilio.com", "https://:t0ken@api.twilio.com"])
def test_a_user_or_password_in_the_url_is_refused_without_showing_it(url: str) -> None:
    with pytest.raises(SettingsError, match="holds a user or password before its host") as refused:
        credentialed_url("TWILIO_API_URL", url, "the account's credentials")
    assert "t0ken" not in str(refused.value) and "AC123" not in str(refused.value)
    assert "a credential never goes in a setting's URL; remove it" in str(refused.value)


def test_a_carriers_api_url_with_a_credential_is_refused_at_start() -> None:
    with pytest.raises(SettingsError, match="TELNYX_API_URL='https://api.telnyx.com' holds a user or password"):
        PhoneSettings.from_env({"TELNYX_API_URL": "https://KEY:t0ken@api.telnyx.com"}, keyless=False,
                               bot_channel_token=None)
