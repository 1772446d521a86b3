"""Flags and environment → BotConfig: flags win, secrets come from the environment."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bot.config import ConfigError, load_config
from tests.bot.conftest import REPO, bot_env

SERVICE_KEYS = {"DEEPGRAM_API_KEY": "dg-secret", "OPENAI_API_KEY": "oa-secret", "CARTESIA_API_KEY": "ca-secret"}


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
    config = load_config([], {"DAILY_ROOM_URL": "https://x.daily.co/r", "DAILY_TOKEN": "tok-secret", **SERVICE_KEYS})
    assert "tok-secret" not in repr(config)
    assert not any(key in repr(config) for key in SERVICE_KEYS.values())


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


def test_all_three_service_keys_select_the_service_pipeline() -> None:
    assert load_config([], SERVICE_KEYS).pipeline_name == "services"
    assert load_config([], {}).pipeline_name == "parrot"


def test_partial_service_keys_error_names_the_missing_ones() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config([], {"OPENAI_API_KEY": "oa-secret"})
    message = str(raised.value)
    assert "missing: DEEPGRAM_API_KEY, CARTESIA_API_KEY" in message
    assert "oa-secret" not in message


def test_service_endpoint_overrides_are_read_and_default_to_the_public_apis() -> None:
    overrides = {
        "DEEPGRAM_API_URL": "ws://127.0.0.1:9001",
        "OPENAI_BASE_URL": "http://127.0.0.1:9002/v1/",
        "CARTESIA_API_URL": "https://tts.internal",
    }
    services = load_config([], {**SERVICE_KEYS, **overrides}).services
    assert services is not None
    assert (services.deepgram_url, services.openai_base_url, services.cartesia_url) == (
        "ws://127.0.0.1:9001",
        "http://127.0.0.1:9002/v1",
        "https://tts.internal",
    )
    defaults = load_config([], SERVICE_KEYS).services
    assert defaults is not None and (defaults.deepgram_url, defaults.openai_base_url, defaults.cartesia_url) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEEPGRAM_API_URL", "api.deepgram.com"),
        ("OPENAI_BASE_URL", "ws://127.0.0.1:9/v1"),
        ("OPENAI_BASE_URL", "http://"),
        ("CARTESIA_API_URL", "ftp://tts.internal"),
        ("CARTESIA_API_URL", "https://tts internal"),
    ],
)
def test_a_bad_service_endpoint_is_a_one_line_error_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config([], {**SERVICE_KEYS, variable: value})
    message = str(raised.value)
    assert message.startswith(f"{variable} must be a ") and "\n" not in message


def test_service_endpoints_reach_the_pipecat_services() -> None:
    from bot.config import ServiceSettings
    from bot.services import ServiceProcessors

    settings = ServiceSettings(
        "dg",
        "oa",
        "ca",
        deepgram_url="ws://127.0.0.1:9001",
        openai_base_url="http://127.0.0.1:9002/v1",
        cartesia_url="http://127.0.0.1:9003",
    )
    processors = ServiceProcessors(settings)
    assert str(processors.llm._client.base_url) == "http://127.0.0.1:9002/v1/"
    assert processors.tts._url == "ws://127.0.0.1:9003/tts/websocket"
    default = ServiceProcessors(ServiceSettings("dg", "oa", "ca"))
    assert default.tts._url == "wss://api.cartesia.ai/tts/websocket"


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


def test_partial_service_keys_exit_2_naming_the_missing_ones() -> None:
    result = run_bot(DEEPGRAM_API_KEY="dg-secret", CARTESIA_API_KEY="ca-secret")
    assert result.returncode == 2
    assert "missing: OPENAI_API_KEY" in result.stderr
    assert "dg-secret" not in result.stderr


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
