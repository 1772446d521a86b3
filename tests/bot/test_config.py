"""Flags and environment → BotConfig: flags win, secrets come from the environment."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import TRANSPORTS, ConfigError, load_config
from tests.bot.conftest import REPO, bot_env
from voicefleet_settings.model import ENUM
from voicefleet_settings.read import entry


def test_flags_win_over_environment() -> None:
    env = {
        "DAILY_ROOM_URL": "https://env.daily.co/room",
        "VOICEFLEET_SESSION_ID": "from-env",
        "MAX_SESSION_SECONDS": "100",
        "BOT_IDLE_TIMEOUT_SECONDS": "50",
        "BOT_CONNECT_TIMEOUT_SECONDS": "20",
    }
    config = load_config(
        [
            "--room-url=https://flag.daily.co/room",
            "--session-id=from-flag",
            "--max-duration=10",
            "--idle-timeout=5",
            "--connect-timeout=2",
        ],
        env,
    )
    assert (config.room_url, config.session_id) == ("https://flag.daily.co/room", "from-flag")
    assert (config.max_duration, config.idle_timeout, config.connect_timeout) == (10, 5, 2)


def test_environment_is_used_when_no_flag_is_given() -> None:
    config = load_config([], {"MAX_SESSION_SECONDS": "100", "VOICEFLEET_SESSION_ID": "s-1"})
    assert (config.max_duration, config.session_id) == (100, "s-1")


def test_token_comes_from_environment_without_a_command_line_flag() -> None:
    config = load_config([], {"DAILY_ROOM_URL": "https://x.daily.co/r", "DAILY_TOKEN": "tok-secret"})
    assert config.token == "tok-secret"


def test_token_never_appears_in_the_config_repr() -> None:
    config = load_config([], {"DAILY_ROOM_URL": "https://x.daily.co/r", "DAILY_TOKEN": "tok-secret"})
    assert "tok-secret" not in repr(config)


def test_transport_defaults_to_daily_when_a_room_url_is_given() -> None:
    assert load_config([], {"DAILY_ROOM_URL": "https://x.daily.co/r"}).transport == "daily"
    assert load_config(["--room-url", "https://x.daily.co/r"], {}).transport == "daily"


def test_transport_defaults_to_webrtc_without_a_room_url() -> None:
    assert load_config([], {}).transport == "webrtc"


def test_an_image_picks_the_default_transport_with_bot_transport() -> None:
    """The bot image sets BOT_TRANSPORT=daily: a bare `--check` there must not reach for aiortc."""
    assert load_config([], {"BOT_TRANSPORT": "daily", "DAILY_ROOM_URL": "https://x.daily.co/r"}).transport == "daily"
    assert load_config(["--check"], {"BOT_TRANSPORT": "daily"}).transport == "daily"
    assert load_config(["--transport", "webrtc"], {"BOT_TRANSPORT": "daily"}).transport == "webrtc"


def test_the_catalogues_transports_are_the_hosts() -> None:
    assert entry("BOT_TRANSPORT", ENUM).choices == TRANSPORTS


def test_unknown_bot_transport_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="BOT_TRANSPORT"):
        load_config([], {"BOT_TRANSPORT": "sip"})


def test_daily_transport_without_a_room_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="room URL"):
        load_config(["--transport", "daily"], {})


def test_body_is_parsed_from_environment_as_a_json_object() -> None:
    assert load_config([], {"VOICEFLEET_BODY": '{"lang": "en"}'}).body == {"lang": "en"}


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '"text"'])
def test_body_that_is_not_a_json_object_is_a_config_error(body: str) -> None:
    with pytest.raises(ConfigError, match="VOICEFLEET_BODY"):
        load_config([], {"VOICEFLEET_BODY": body})


@pytest.mark.parametrize("value", ["0", "-5", "soon", "nan"])
def test_non_positive_or_non_numeric_durations_are_config_errors(value: str) -> None:
    with pytest.raises(ConfigError, match="MAX_SESSION_SECONDS"):
        load_config([], {"MAX_SESSION_SECONDS": value})


def test_bot_file_defaults_to_the_parrot_example_and_is_read_from_bot_file(tmp_path: Path) -> None:
    assert load_config([], {}).bot_file == REPO / "examples" / "parrot" / "bot.py"
    mine = tmp_path / "bot.py"
    assert load_config([], {"BOT_FILE": str(mine)}).bot_file == mine


def run_bot(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=REPO, env=bot_env(**env), capture_output=True, text=True, timeout=30
    )


def test_bad_body_exits_2_with_a_usage_error() -> None:
    result = run_bot(VOICEFLEET_BODY="{oops")
    assert result.returncode == 2
    assert "VOICEFLEET_BODY is not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr
    # stdout carries events only: one `ended`, so a dispatcher can show the reason.
    [event] = [json.loads(line) for line in result.stdout.splitlines()]
    assert (event["event"], event["reason"], event["exit_code"]) == ("ended", "config_error", 2)
    assert "VOICEFLEET_BODY is not valid JSON" in event["detail"]


def test_unknown_flag_exits_2() -> None:
    assert run_bot("--no-such-flag").returncode == 2


def test_help_answers_without_importing_pipecat() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bot", "--help"],
        cwd=REPO,
        env=bot_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert "--connect-timeout" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "bot.config" in imported
    assert not any(name.split(".")[0] in ("pipecat", "aiortc", "daily", "loguru") for name in imported)


# The host's settings are read through the catalogue (voicefleet_settings): a value it refuses is the
# same usage error as any other, one line naming the variable and what it may be.
@pytest.mark.parametrize(("variable", "value", "line"), [
    ("BOT_IDLE_TIMEOUT_SECONDS", "soon", "BOT_IDLE_TIMEOUT_SECONDS='soon' is not a number"),
    ("BOT_CONNECT_TIMEOUT_SECONDS", "0", "BOT_CONNECT_TIMEOUT_SECONDS=0 must be above 0"),
    ("BOT_LOG_LEVEL", "loud", "BOT_LOG_LEVEL='loud' is not one of TRACE, DEBUG, INFO"),
    ("LOG_FORMAT", "xml", "LOG_FORMAT='xml' is not one of text, json"),
    ("VOICEFLEET_ICE_LOOPBACK", "maybe", "VOICEFLEET_ICE_LOOPBACK='maybe' is not a boolean"),
    ("VOICEFLEET_AUDIO_JITTER_PREFETCH", "16", "VOICEFLEET_AUDIO_JITTER_PREFETCH=16 must be at most 15"),
    ("BOT_TURN_TRANSPORT", "udp", "BOT_TURN_TRANSPORT='udp' is not one of tcp"),
])
def test_a_host_setting_the_catalogue_refuses_is_a_config_error(variable: str, value: str, line: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(line)):
        load_config([], {variable: value})


def test_a_bad_host_setting_stops_the_bot_with_one_line_naming_it_and_no_traceback() -> None:
    result = run_bot(BOT_LOG_LEVEL="loud")
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["python -m bot: error: BOT_LOG_LEVEL='loud' is not one of TRACE, DEBUG, "
                                          "INFO, SUCCESS, WARNING, ERROR, CRITICAL"]
    [event] = [json.loads(line) for line in result.stdout.splitlines()]
    assert (event["reason"], event["exit_code"]) == ("config_error", 2)
    assert event["detail"].startswith("BOT_LOG_LEVEL='loud'")


def test_values_the_host_took_before_it_still_takes() -> None:
    """Fractions of a second, loguru's level in any case, the loopback's words, the transport's."""
    env = {"BOT_IDLE_TIMEOUT_SECONDS": "0.5", "BOT_CONNECT_TIMEOUT_SECONDS": "2.5", "MAX_SESSION_SECONDS": "1.5",
           "BOT_LOG_LEVEL": "debug", "VOICEFLEET_ICE_LOOPBACK": "yes", "LOG_FORMAT": "JSON",
           "BOT_TRANSPORT": "websocket", "BOT_MAX_IDLE_SECONDS": "0.25", "BOT_CHANNEL_URL": "ws://d/bots/channel",
           "BOT_CHANNEL_TOKEN": "t"}
    config = load_config([], env)
    assert (config.idle_timeout, config.connect_timeout, config.max_duration) == (0.5, 2.5, 1.5)
    assert config.transport == "websocket" and config.channel is not None
    assert config.channel.max_idle_seconds == 0.25


def test_unset_host_settings_are_the_catalogues_defaults() -> None:
    config = load_config([], {})
    assert (config.idle_timeout, config.connect_timeout, config.max_duration) == (300, 120, 1800)
    assert config.transport == "webrtc"
    channel = load_config([], {"BOT_CHANNEL_URL": "ws://d/bots/channel", "BOT_CHANNEL_TOKEN": "t"}).channel
    assert channel is not None and channel.max_idle_seconds == 3600
