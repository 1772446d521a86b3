"""DAILY_DIALOUT_CALLER_ID, checked at start (dispatcher/phone/daily_caller_id.py): the `id` of a number the
Daily domain bought, never the number itself, which Daily's `callerId` does not take."""

from __future__ import annotations

import pytest

from dispatcher.phone.settings import PhoneSettings
from dispatcher.settings import SettingsError

CALLER_ID = "34b0eb2b-4f6d-41e2-8189-c836e830ffbb"  # Daily's documented example of a `caller_id`


def phone(**env: str) -> PhoneSettings:
    return PhoneSettings.from_env(env, keyless=False, bot_channel_token=None)


def test_unset_leaves_the_number_to_daily() -> None:
    assert phone().daily_dialout_caller_id is None
    assert phone(DAILY_DIALOUT_CALLER_ID="  ").daily_dialout_caller_id is None


@pytest.mark.parametrize("value", [CALLER_ID, CALLER_ID.upper(), f" {CALLER_ID}\n"])
def test_a_purchased_numbers_id_is_taken_as_daily_writes_it(value: str) -> None:
    assert phone(DAILY_DIALOUT_CALLER_ID=value).daily_dialout_caller_id == CALLER_ID.lower()


@pytest.mark.parametrize("value", ["+14155550199", "14155550199", "+1 (415) 555-0199", "+44 20 7946 0958"])
def test_a_phone_number_is_refused_as_one_with_the_way_out(value: str) -> None:
    with pytest.raises(SettingsError) as refused:
        phone(DAILY_DIALOUT_CALLER_ID=value)
    said = str(refused.value)
    assert said.startswith("DAILY_DIALOUT_CALLER_ID=") and "is a phone number" in said
    assert "the `id` of a number `GET /purchased-phone-numbers` lists, not the number itself" in said


@pytest.mark.parametrize("value", ["PN123", CALLER_ID.replace("-", ""), f"{{{CALLER_ID}}}", f"urn:uuid:{CALLER_ID}",
                                   CALLER_ID[:-1] + "g"])
def test_anything_else_but_a_uuid_is_refused_with_the_way_out(value: str) -> None:
    with pytest.raises(SettingsError, match=r"DAILY_DIALOUT_CALLER_ID=.* is not a UUID: .*`GET /purchased-phone-"
                                            r"numbers` lists, not the number itself"):
        phone(DAILY_DIALOUT_CALLER_ID=value)
