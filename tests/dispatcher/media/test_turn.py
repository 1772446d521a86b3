"""TURN REST credentials: the exact bytes coturn checks, bounded expiry, and a secret that stays put."""

from __future__ import annotations

import json

import pytest

from dispatcher.media.turn import (
    DENIED_PEER_RANGES,
    MAX_TTL_SECONDS,
    TurnCredentials,
    TurnSettings,
    turn_password,
)
from dispatcher.settings import SettingsError

SECRET = "correct horse battery staple"
SESSION = "0123456789abcdef01234567"
NOW = 1795338600.7  # expiry = int(NOW) + 600 = 1795339200
URLS = ",".join(
    (
        "turn:turn.example.com:3478?transport=udp",
        "turn:turn.example.com:3478?transport=tcp",
        "turns:turn.example.com:443?transport=tcp",
    )
)


def settings(**env: str) -> TurnSettings:
    base = {"TURN_URLS": URLS, "TURN_SHARED_SECRET": SECRET}
    result = TurnSettings.from_env({**base, **env}, cloud=True)
    assert result is not None
    return result


def test_password_is_base64_hmac_sha1_of_the_username_as_coturn_computes_it() -> None:
    # Expected values from `openssl dgst -sha1 -hmac <secret> -binary | base64`, not from this code.
    assert turn_password(SECRET.encode(), f"1795339200:{SESSION}") == "cKFyGYUfeeP6z86FLBpsOOPzRks="
    assert turn_password(SECRET.encode(), f"1795339200:{SESSION}:bot") == "wGyKWHGv9kPq5o+T3Hh/zEzk0f8="


def test_client_config_carries_expiry_colon_session_and_its_password() -> None:
    config = TurnCredentials(settings(), clock=lambda: NOW).ice_config(SESSION)
    assert config == {
        "iceServers": [
            {
                "urls": URLS.split(","),
                "username": f"1795339200:{SESSION}",
                "credential": "cKFyGYUfeeP6z86FLBpsOOPzRks=",
            }
        ],
        "iceTransportPolicy": "relay",
    }


def test_the_bot_gets_credentials_of_its_own() -> None:
    credentials = TurnCredentials(settings(), clock=lambda: NOW)
    bot = credentials.ice_config(SESSION, role="bot")["iceServers"][0]
    client = credentials.ice_config(SESSION)["iceServers"][0]
    assert bot["username"] == f"1795339200:{SESSION}:bot"
    assert bot["credential"] == "wGyKWHGv9kPq5o+T3Hh/zEzk0f8="
    assert bot["credential"] != client["credential"]


def test_expiry_follows_the_configured_ttl_and_the_clock() -> None:
    credentials = TurnCredentials(settings(TURN_CREDENTIAL_TTL_SECONDS="45"), clock=lambda: 1000.9)
    assert credentials.username(SESSION) == f"1045:{SESSION}"


def test_ttl_is_bounded() -> None:
    with pytest.raises(SettingsError, match="TURN_CREDENTIAL_TTL_SECONDS"):
        settings(TURN_CREDENTIAL_TTL_SECONDS=str(MAX_TTL_SECONDS + 1))
    with pytest.raises(SettingsError, match="TURN_CREDENTIAL_TTL_SECONDS"):
        settings(TURN_CREDENTIAL_TTL_SECONDS="5")
    assert settings(TURN_CREDENTIAL_TTL_SECONDS=str(MAX_TTL_SECONDS)).ttl_seconds == MAX_TTL_SECONDS


def test_policy_defaults_to_relay_in_the_cloud_and_all_locally() -> None:
    env = {"TURN_URLS": URLS, "TURN_SHARED_SECRET": SECRET}
    cloud, local = TurnSettings.from_env(env, cloud=True), TurnSettings.from_env(env, cloud=False)
    assert cloud is not None and cloud.policy == "relay"
    assert local is not None and local.policy == "all"
    assert "iceTransportPolicy" not in TurnCredentials(local).ice_config(SESSION)
    assert settings(ICE_TRANSPORT_POLICY="all").policy == "all"
    with pytest.raises(SettingsError, match="ICE_TRANSPORT_POLICY"):
        settings(ICE_TRANSPORT_POLICY="direct")


def test_a_cloud_bot_relays_even_when_its_client_may_go_direct() -> None:
    credentials = TurnCredentials(settings(ICE_TRANSPORT_POLICY="all"))
    assert "iceTransportPolicy" not in credentials.ice_config(SESSION)
    assert credentials.ice_config(SESSION, role="bot")["iceTransportPolicy"] == "relay"  # no inbound, ever
    local = TurnSettings.from_env({"TURN_URLS": URLS, "TURN_SHARED_SECRET": SECRET}, cloud=False)
    assert local is not None and "iceTransportPolicy" not in TurnCredentials(local).ice_config(SESSION, role="bot")


def test_no_turn_urls_means_no_turn() -> None:
    assert TurnSettings.from_env({}, cloud=True) is None


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"TURN_URLS": URLS}, "TURN_SHARED_SECRET"),
        ({"TURN_URLS": URLS, "TURN_SHARED_SECRET": "short"}, "TURN_SHARED_SECRET"),
        ({"TURN_SHARED_SECRET": SECRET}, "TURN_URLS"),
        ({"TURN_URLS": "https://turn.example.com", "TURN_SHARED_SECRET": SECRET}, "TURN_URLS"),
        ({"TURN_URLS": "turn:turn.example.com:70000", "TURN_SHARED_SECRET": SECRET}, "TURN_URLS"),
        ({"TURN_URLS": "turns:turn.example.com:443?transport=udp", "TURN_SHARED_SECRET": SECRET}, "TURN_URLS"),
        ({"TURN_URLS": "stun:stun.example.com:3478", "TURN_SHARED_SECRET": SECRET}, "TURN_URLS"),
    ],
)
def test_bad_configuration_names_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        TurnSettings.from_env(env, cloud=True)


@pytest.mark.parametrize(
    "url", ["turn:192.0.2.7", "turn:[2001:db8::7]:3478?transport=tcp", "turns:turn.example.com:443", "stun:a.b:1"]
)
def test_accepts_the_url_forms_browsers_and_aiortc_take(url: str) -> None:
    assert settings(TURN_URLS=f"turn:turn.example.com,{url}").urls[-1] == url


def test_the_long_lived_secret_never_appears_in_what_leaves_the_module() -> None:
    turn = settings()
    credentials = TurnCredentials(turn)
    issued = json.dumps([credentials.ice_config(SESSION), credentials.ice_config(SESSION, role="bot")])
    assert SECRET not in issued
    assert SECRET not in repr(turn) and SECRET not in str(turn)
    with pytest.raises(SettingsError) as error:
        TurnSettings.from_env({"TURN_URLS": URLS, "TURN_SHARED_SECRET": "tooshort-secret"}, cloud=True)
    assert "tooshort-secret" not in str(error.value)


def test_denied_peer_ranges_cover_private_and_metadata_addresses() -> None:
    import ipaddress

    def denied(address: str) -> bool:
        ip = ipaddress.ip_address(address)
        for entry in DENIED_PEER_RANGES:
            low, _, high = entry.partition("-")
            first = ipaddress.ip_address(low)
            last = ipaddress.ip_address(high or low)
            if first.version == ip.version and first <= ip <= last:  # type: ignore[operator]
                return True
        return False

    for address in ("169.254.169.254", "10.1.2.3", "172.20.0.1", "192.168.1.1", "127.0.0.1", "100.64.0.1",
                    "fd00:ec2::254", "fe80::1", "::1", "0.0.0.0"):
        assert denied(address), address
    for address in ("198.51.100.7", "203.0.113.9", "192.0.2.1", "8.8.8.8", "2001:db8::1"):
        assert not denied(address), address
