"""Which transports a deployment offers (`TRANSPORTS`, `DEFAULT_TRANSPORT`), and what each needs."""

from __future__ import annotations

import pytest

from dispatcher.factory import build_rooms, build_turn
from dispatcher.settings import Settings, SettingsError

CLOUD = {"MACHINES": "fly", "DISPATCHER_API_KEYS": "k" * 20}
CHANNEL = {"BOT_CHANNEL_TOKEN": "t" * 32}
TURN = {"TURN_URLS": "turn:turn.example.com:3478", "TURN_SHARED_SECRET": "s" * 24}


def test_each_mode_has_its_own_default() -> None:
    assert Settings.from_env({}).transports == ("webrtc",)
    assert Settings.from_env(CLOUD).transports == ("daily",)


def test_the_default_transport_comes_first() -> None:
    env = {**CLOUD, **CHANNEL, "TRANSPORTS": "daily,webrtc", "DEFAULT_TRANSPORT": "webrtc"}
    assert Settings.from_env(env).transports == ("webrtc", "daily")
    assert Settings.from_env({**env, "DEFAULT_TRANSPORT": ""}).transports == ("daily", "webrtc")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({**CLOUD, "TRANSPORTS": "daily,sip"}, "TRANSPORTS"),
        ({**CLOUD, "TRANSPORTS": "daily", "DEFAULT_TRANSPORT": "webrtc"}, "DEFAULT_TRANSPORT"),
        ({"TRANSPORTS": "daily"}, "TRANSPORTS"),  # local bots serve webrtc only
        ({**CLOUD, "TRANSPORTS": "webrtc"}, "BOT_CHANNEL_TOKEN"),  # cloud signalling needs the channel
    ],
)
def test_bad_transport_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_cloud_webrtc_needs_a_turn_server_and_a_webrtc_only_cloud_needs_no_daily() -> None:
    settings = Settings.from_env({**CLOUD, **CHANNEL, "TRANSPORTS": "webrtc"})
    with pytest.raises(SettingsError, match="TURN_URLS"):
        build_turn(settings, {})
    assert build_turn(settings, TURN) is not None
    assert build_rooms(settings, {}) is None  # no DAILY_API_KEY asked for
    with pytest.raises(SettingsError, match="DAILY_API_KEY"):
        build_rooms(Settings.from_env(CLOUD), {})


def test_local_mode_needs_no_turn_server_but_uses_one_when_given() -> None:
    assert build_turn(Settings(), {}) is None
    turn = build_turn(Settings(), TURN)
    assert turn is not None and turn.policy == "all"  # locally, direct paths are fine


def test_the_start_up_check_lists_a_missing_turn_server_and_asks_no_daily_key_of_a_webrtc_only_cloud() -> None:
    from dispatcher.factory import configuration_problems

    env = {**CLOUD, **CHANNEL, "TRANSPORTS": "webrtc", "FLY_API_TOKEN": "f", "FLY_APP": "a", "BOT_IMAGE": "i@sha256:0",
           "FLY_ORG": "o", "BOT_CHANNEL_URL": "wss://d.example/bots/channel"}
    problems = configuration_problems(env)
    assert any("TURN_URLS" in p for p in problems), problems
    assert not any("DAILY" in p for p in problems), problems
    assert configuration_problems({**env, **TURN}) == []


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "ws://127.0.0.1:8080/bots/channel"),
        ("0.0.0.0", "ws://127.0.0.1:8080/bots/channel"),
        ("::", "ws://[::1]:8080/bots/channel"),
        ("192.0.2.10", "ws://192.0.2.10:8080/bots/channel"),  # bound to one address: bots dial that one
        ("2001:db8::10", "ws://[2001:db8::10]:8080/bots/channel"),
    ],
)
def test_local_bots_dial_the_address_the_dispatcher_listens_on(host: str, url: str) -> None:
    from dispatcher.channel.access import ChannelAccess

    access = ChannelAccess.generated()
    access.bind(host, 8080)
    assert access.url == url


@pytest.mark.parametrize(
    ("provider", "missing"),
    [({"MACHINES": "gce", "GCE_PROJECT": "p", "GCE_ZONE": "z", "GCE_INSTANCE_TEMPLATE": "t"}, ["BOT_CHANNEL_URL"]),
     ({"MACHINES": "fly", "FLY_API_TOKEN": "f", "FLY_APP": "a", "BOT_IMAGE": "i@sha256:0"},
      ["BOT_CHANNEL_URL", "FLY_ORG"]),
     ({"MACHINES": "ecs", "AWS_REGION": "eu-west-1", "ECS_CLUSTER": "c", "ECS_TASK_DEFINITION": "bot",
       "ECS_SUBNETS": "s", "ECS_SECURITY_GROUPS": "g"}, ["BOT_CHANNEL_URL", "ECS_BOT_TASK_ROLE_ARNS"])],
)
def test_a_channel_on_gce_fly_or_ecs_needs_what_checking_the_bots_machine_identity_needs(
    provider: dict[str, str], missing: list[str]
) -> None:
    """Bots there must prove their machine: a dispatcher that could not check would refuse every bot."""
    from dispatcher.factory import configuration_problems

    env = {**CLOUD, **provider, **CHANNEL, **TURN, "TRANSPORTS": "webrtc"}
    [problem] = configuration_problems(env)
    assert all(name in problem for name in missing), problem
    checkable = {**env, "BOT_CHANNEL_URL": "wss://d.example/bots/channel", "FLY_ORG": "o",
                 "ECS_BOT_TASK_ROLE_ARNS": "arn:aws:iam::123456789012:role/bot-task"}
    assert configuration_problems(checkable) == []
    without_channel = configuration_problems({k: v for k, v in env.items() if k != "BOT_CHANNEL_TOKEN"})
    assert not any("identity" in p for p in without_channel), without_channel  # no hello to check
