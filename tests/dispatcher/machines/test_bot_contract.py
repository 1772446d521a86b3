"""The bot's session environment, checked both ways: what every provider writes
(`dispatcher.machines.bot_environment`) is what `bot/config.py` reads, and nothing the bot reads is missing."""

from __future__ import annotations

import json

import pytest

from bot import config as bot_config
from botchannel.contract import CHANNEL_TOKEN_VARIABLE, IDENTITY_VARIABLE
from dispatcher.machines import bot_environment as bot_contract
from dispatcher.machines.base import LaunchSpec
from dispatcher.machines.local.provider import _bot_environment

CLOUD = LaunchSpec(
    session_id="0123456789abcdef01234567",
    body_digest="d" * 32,
    max_session_seconds=900,
    body={"persona": "tester", "lang": "en"},
    room_url="https://voicefleet-test.daily.co/vf-room",
    bot_token="bot.jwt.secret",
)
ICE = {
    "iceServers": [{"urls": ["turn:192.0.2.10:3478"], "username": "1795339200:s:bot", "credential": "c2VjcmV0"}],
    "iceTransportPolicy": "relay",
}
CLOUD_WEBRTC = LaunchSpec(
    session_id="0123456789abcdef01234567",
    body_digest="d" * 32,
    max_session_seconds=900,
    ice_config=ICE,
)
LOCAL = LaunchSpec(session_id="fedcba9876543210fedcba98", body_digest="d" * 32, max_session_seconds=60)


def test_the_bot_reads_every_value_a_cloud_provider_writes() -> None:
    config = bot_config.load_config([], bot_contract.bot_environment(CLOUD))
    assert config.session_id == CLOUD.session_id
    assert dict(config.body) == CLOUD.body
    assert config.max_duration == 900
    assert config.room_url == CLOUD.room_url
    assert config.token == "bot.jwt.secret"
    assert config.transport == "daily"


def test_a_local_session_has_no_room_and_the_bot_serves_webrtc() -> None:
    env = bot_contract.bot_environment(LOCAL)
    assert set(env) == {bot_contract.SESSION_ID, bot_contract.BODY, bot_contract.MAX_SESSION_SECONDS}
    config = bot_config.load_config([], env)
    assert (config.transport, config.session_id, config.max_duration) == ("webrtc", LOCAL.session_id, 60)


def test_a_cloud_webrtc_session_gives_the_bot_its_own_turn_credentials_and_no_room() -> None:
    env = bot_contract.bot_environment(CLOUD_WEBRTC)
    assert bot_contract.ROOM_URL not in env and bot_contract.TOKEN not in env
    config = bot_config.load_config([], env)
    assert config.transport == "webrtc" and config.ice.relay_only
    [server] = config.ice.servers
    assert (server.urls, server.username, server.credential) == (
        ("turn:192.0.2.10:3478",),
        "1795339200:s:bot",
        "c2VjcmV0",
    )
    items = {i["key"]: i["value"] for i in bot_contract.gce_metadata_items(CLOUD_WEBRTC)}
    assert (
        bot_config.load_config([], {**{v: items[k] for k, v in bot_contract.GCE_SESSION_METADATA.items()}}).ice
        == config.ice
    )


def test_both_sides_name_the_same_variables() -> None:
    assert set(bot_config.SESSION_VARIABLES) == set(bot_contract.SESSION_VARIABLES)
    # ... plus the VM's own channel credential, which the bot reads as BOT_CHANNEL_TOKEN, and where
    # its identity token comes from (BOT_IDENTITY)
    assert set(bot_contract.GCE_SESSION_METADATA.values()) == {
        *bot_contract.SESSION_VARIABLES, CHANNEL_TOKEN_VARIABLE, IDENTITY_VARIABLE}


@pytest.mark.parametrize("variable", bot_contract.SESSION_VARIABLES)
def test_each_contract_variable_changes_what_the_bot_runs_with(variable: str) -> None:
    """The reverse direction: a variable the bot stopped reading would leave its config unchanged."""
    env = bot_contract.bot_environment(CLOUD)
    if variable == bot_contract.TRANSPORT:  # a call's session has no room, which would pick Daily
        env = {k: v for k, v in env.items() if k not in (bot_contract.ROOM_URL, bot_contract.TOKEN)}
    changed = dict(env)
    changed[variable] = {
        bot_contract.SESSION_ID: "another-session",
        bot_contract.BODY: json.dumps({"persona": "other"}),
        bot_contract.MAX_SESSION_SECONDS: "120",
        bot_contract.ROOM_URL: "https://voicefleet-test.daily.co/other",
        bot_contract.TOKEN: "other.jwt",
        bot_contract.ICE_CONFIG: json.dumps({"iceServers": [{"urls": "stun:192.0.2.11"}]}),
        bot_contract.TRANSPORT: "websocket",
    }[variable]
    assert bot_config.load_config([], changed) != bot_config.load_config([], env)


def test_gce_metadata_carries_the_same_values_the_startup_script_copies() -> None:
    items = {i["key"]: i["value"] for i in bot_contract.gce_metadata_items(CLOUD)}
    as_env = {variable: items[key] for key, variable in bot_contract.GCE_SESSION_METADATA.items() if items[key]}
    assert as_env == bot_contract.bot_environment(CLOUD)
    # Every key is present even without a room: the script copies each one unconditionally.
    local_items = {i["key"]: i["value"] for i in bot_contract.gce_metadata_items(LOCAL)}
    assert set(local_items) == set(bot_contract.GCE_SESSION_METADATA)
    assert local_items["daily-token"] == ""


def test_a_local_bot_gets_the_contract_but_none_of_the_dispatchers_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {"DISPATCHER_API_KEYS", "DAILY_API_KEY", "FLY_API_TOKEN", "TURN_SHARED_SECRET"}
    for secret in secrets:
        monkeypatch.setenv(secret, "s3cret")
    env = _bot_environment(LOCAL, None, ())
    assert not secrets & set(env)
    assert {k: env[k] for k in bot_contract.bot_environment(LOCAL)} == bot_contract.bot_environment(LOCAL)


def test_a_phone_calls_cold_bot_runs_the_call_not_its_images_default_transport() -> None:
    """A cold bot for a call has no room URL; the bot image's default transport is Daily, which
    without a room would refuse to start. The session's environment names the call's transport."""
    call = LaunchSpec(session_id="0123456789abcdef01234567", body_digest="d" * 32, max_session_seconds=900,
                      transport="websocket")
    image_default = {"BOT_TRANSPORT": "daily"}  # what the bot image's ENV says
    env = {**image_default, **bot_contract.bot_environment(call)}  # the session's values win, as overrides do
    assert bot_config.load_config([], env).transport == "websocket"
    assert bot_contract.TRANSPORT not in bot_contract.bot_environment(CLOUD)  # a Daily session: the room picks
