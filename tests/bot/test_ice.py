"""The bot's ICE settings: the dispatcher's `VOICEFLEET_ICE_CONFIG`, validated without leaking it."""

from __future__ import annotations

import json

import pytest

from bot.ice import CONFIG_VARIABLE, IceServerSettings, ice_settings

TURN = "turn:192.0.2.10:3478?transport=udp"


def config(**fields: object) -> dict[str, str]:
    base: dict[str, object] = {"iceServers": [{"urls": [TURN], "username": "1795339200:s:bot", "credential": "pw=="}]}
    return {CONFIG_VARIABLE: json.dumps({**base, **fields})}


def test_relay_policy_and_credentials_are_read() -> None:
    settings = ice_settings(config(iceTransportPolicy="relay"))
    assert settings.relay_only
    assert settings.servers == (IceServerSettings(urls=(TURN,), username="1795339200:s:bot", credential="pw=="),)


def test_without_a_policy_every_candidate_type_is_used() -> None:
    assert not ice_settings(config()).relay_only
    assert ice_settings({}).servers == ()


def test_plain_urls_from_bot_ice_servers_come_first() -> None:
    settings = ice_settings({"BOT_ICE_SERVERS": "stun:stun.example.org:3478", **config()})
    assert [s.urls for s in settings.servers] == [("stun:stun.example.org:3478",), (TURN,)]


def test_a_single_url_string_is_accepted_as_browsers_do() -> None:
    settings = ice_settings({CONFIG_VARIABLE: json.dumps({"iceServers": [{"urls": TURN}]})})
    assert settings.servers[0].urls == (TURN,)


SECRET_SERVER = {"urls": [TURN], "username": "u", "credential": "s3cr3t-pw"}


@pytest.mark.parametrize(
    "raw",
    [
        '{"iceServers": [{"credential": "s3cr3t-pw", not json',
        json.dumps([SECRET_SERVER]),
        json.dumps({"iceServers": SECRET_SERVER}),
        json.dumps({"iceServers": [{**SECRET_SERVER, "urls": []}]}),
        json.dumps({"iceServers": [{**SECRET_SERVER, "username": 5}]}),
        json.dumps({"iceServers": [SECRET_SERVER], "iceTransportPolicy": "direct"}),
        json.dumps({"iceServers": [{**SECRET_SERVER, "urls": ["stun:a.b:3478"]}], "iceTransportPolicy": "relay"}),
    ],
)
def test_bad_configuration_names_the_variable_and_never_quotes_the_credential(raw: str) -> None:
    with pytest.raises(ValueError, match=CONFIG_VARIABLE) as error:
        ice_settings({CONFIG_VARIABLE: raw})
    assert "s3cr3t-pw" not in str(error.value)


def test_the_credential_is_kept_out_of_repr() -> None:
    assert "pw==" not in repr(ice_settings(config(iceTransportPolicy="relay")))


def test_a_bot_with_no_udp_keeps_only_its_turn_urls_over_tcp_or_tls_in_their_order() -> None:
    """aiortc uses the first TURN URL and no other, and the relay's list starts with UDP."""
    urls = [TURN, "stun:192.0.2.10:3478", "turn:192.0.2.10:3478?transport=tcp", "turns:turn.example.com:443"]
    env = {CONFIG_VARIABLE: json.dumps({"iceServers": [{"urls": urls, "username": "u", "credential": "pw=="}],
                                        "iceTransportPolicy": "relay"}), "BOT_TURN_TRANSPORT": "tcp"}
    [server] = ice_settings(env).servers
    assert server.urls == ("turn:192.0.2.10:3478?transport=tcp", "turns:turn.example.com:443")
    assert ice_settings({**env, "BOT_TURN_TRANSPORT": ""}).servers[0].urls == tuple(urls)  # unset: all of them
    with pytest.raises(ValueError, match="no turn: URL with"):
        ice_settings({**config(), "BOT_TURN_TRANSPORT": "tcp"})  # UDP only: nothing it could use
    with pytest.raises(ValueError, match="BOT_TURN_TRANSPORT"):
        ice_settings({**config(), "BOT_TURN_TRANSPORT": "quic"})


def test_a_sessions_assigned_ice_servers_keep_to_the_machines_turn_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cloud bot's TURN credentials come over the channel; the transport it can use is its machine's."""
    from typing import cast

    from bot.channel_session import assigned_ice
    from bot.config import BotConfig
    from botchannel.contract import Assignment

    urls = [TURN, "turn:192.0.2.10:3478?transport=tcp"]
    servers = [{"urls": urls, "username": "u", "credential": "p"}]
    assignment = Assignment("s" * 24, 600, ice_config={"iceServers": servers, "iceTransportPolicy": "relay"})
    monkeypatch.setenv("BOT_TURN_TRANSPORT", "tcp")
    assert assigned_ice(cast(BotConfig, None), assignment).servers[0].urls == (urls[1],)
