"""The TURN settings' limits at their exact edges (written as numbers: the constants could move)."""

from __future__ import annotations

import dataclasses

import pytest

from dispatcher.media.turn import TurnSettings
from dispatcher.settings import SettingsError

URL = "turn:turn.example.com:3478?transport=udp"


def load(**env: str) -> TurnSettings:
    result = TurnSettings.from_env({"TURN_URLS": URL, "TURN_SHARED_SECRET": "s" * 16, **env}, cloud=True)
    assert result is not None
    return result


@pytest.mark.parametrize(("ttl", "accepted"), [("29", False), ("30", True), ("3600", True), ("3601", False)])
def test_a_credential_lives_30_to_3600_seconds(ttl: str, accepted: bool) -> None:
    if accepted:
        assert load(TURN_CREDENTIAL_TTL_SECONDS=ttl).ttl_seconds == int(ttl)
    else:
        with pytest.raises(SettingsError, match="TURN_CREDENTIAL_TTL_SECONDS"):
            load(TURN_CREDENTIAL_TTL_SECONDS=ttl)


def test_the_shared_secret_has_at_least_16_characters() -> None:
    assert load(TURN_SHARED_SECRET="s" * 16).shared_secret == b"s" * 16
    with pytest.raises(SettingsError, match="TURN_SHARED_SECRET"):
        load(TURN_SHARED_SECRET="s" * 15)


@pytest.mark.parametrize(("port", "accepted"), [("0", False), ("1", True), ("65535", True), ("65536", False)])
def test_a_url_port_is_1_to_65535(port: str, accepted: bool) -> None:
    url = f"turn:turn.example.com:{port}?transport=udp"
    if accepted:
        assert load(TURN_URLS=url).urls == (url,)
    else:
        with pytest.raises(SettingsError, match="TURN_URLS"):
            load(TURN_URLS=url)


def test_settings_cannot_be_changed_once_loaded() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        load().ttl_seconds = 10  # type: ignore[misc]


@pytest.mark.parametrize(("per_key", "accepted"), [("0", False), ("1", True), ("500", True)])
def test_a_key_holds_at_least_one_turn_credential(per_key: str, accepted: bool) -> None:
    assert load().credentials_per_key == 20  # the documented default
    if accepted:
        assert load(TURN_CREDENTIALS_PER_KEY=per_key).credentials_per_key == int(per_key)
    else:
        with pytest.raises(SettingsError, match="TURN_CREDENTIALS_PER_KEY"):
            load(TURN_CREDENTIALS_PER_KEY=per_key)
