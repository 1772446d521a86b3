"""Command line + environment → `BotConfig`.

This module imports nothing heavy on purpose: `python -m bot --help` and usage errors must answer
in milliseconds, before any Pipecat import. Flags win over environment variables; secrets (the
Daily token, service API keys) are read from the environment in the cloud and never printed.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.ice import CONFIG_VARIABLE as ICE_CONFIG_VARIABLE
from bot.ice import IceSettings, ice_settings

TransportName = Literal["webrtc", "daily"]

DEFAULT_MAX_DURATION_SECONDS = 1800.0
DEFAULT_IDLE_TIMEOUT_SECONDS = 300.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 120.0
DEFAULT_MAX_IDLE_SECONDS = 3600.0  # a reserve bot's own cap; the dispatcher retires it sooner
UNASSIGNED_SESSION_ID = "unassigned"  # a reserve bot's events before its assignment

# What a dispatcher's provider sets for one session (dispatcher/machines/bot_environment.py writes them; a
# test checks both sides name the same variables). The bot image does not ship the dispatcher,
# so the names are repeated here, not imported.
ENV_SESSION_ID = "VOICEFLEET_SESSION_ID"
ENV_BODY = "VOICEFLEET_BODY"
ENV_MAX_SESSION_SECONDS = "MAX_SESSION_SECONDS"
ENV_ROOM_URL = "DAILY_ROOM_URL"
ENV_TOKEN = "DAILY_TOKEN"  # noqa: S105 - a variable name, not a secret
ENV_ICE_CONFIG = ICE_CONFIG_VARIABLE  # webrtc in the cloud: the bot's own short-lived TURN credentials
SESSION_VARIABLES = (ENV_SESSION_ID, ENV_BODY, ENV_MAX_SESSION_SECONDS, ENV_ROOM_URL, ENV_TOKEN, ENV_ICE_CONFIG)
# The transport when neither --transport nor a room URL picks one (default webrtc). An image sets
# it to the transport it carries: the bot image is Daily-only, so a bare `python -m bot --check`
# there checks Daily instead of failing on the missing aiortc.
ENV_TRANSPORT = "BOT_TRANSPORT"
TRANSPORTS: tuple[TransportName, ...] = ("webrtc", "daily")

# The service pipeline runs only when all three are set; a partial set is a configuration mistake.
SERVICE_KEY_VARIABLES = ("DEEPGRAM_API_KEY", "OPENAI_API_KEY", "CARTESIA_API_KEY")
# Endpoint overrides (a private deployment, or local fakes in tests), named as each SDK's users
# know them; the schemes each service's client can speak.
SERVICE_URL_VARIABLES = {
    "DEEPGRAM_API_URL": ("ws://", "wss://", "http://", "https://"),
    "OPENAI_BASE_URL": ("http://", "https://"),
    "CARTESIA_API_URL": ("ws://", "wss://", "http://", "https://"),
}


EXIT_USAGE = 2


class ConfigError(Exception):
    """Bad flags or environment: the bot exits `EXIT_USAGE` (2) with this message."""


@dataclass(frozen=True)
class ServiceSettings:
    """STT → LLM → TTS settings. Keys are secrets: kept out of `repr` so they never reach a log."""

    deepgram_api_key: str = field(repr=False)
    openai_api_key: str = field(repr=False)
    cartesia_api_key: str = field(repr=False)
    deepgram_model: str | None = None
    openai_model: str | None = None
    cartesia_model: str | None = None
    cartesia_voice_id: str | None = None
    system_prompt: str | None = None
    deepgram_url: str | None = None  # None → the SDKs' public endpoints
    openai_base_url: str | None = None
    cartesia_url: str | None = None


@dataclass(frozen=True)
class ChannelSettings:
    """The control channel (botchannel/contract.py): set when a dispatcher runs this bot.

    With a channel the bot listens on no port: signalling arrives over the channel it dialled.
    """

    url: str
    token: str = field(repr=False)  # the per-deployment bot credential: environment only
    cold: bool  # launched for one session (its id given); False: a reserve bot awaiting `assign`
    max_idle_seconds: float = DEFAULT_MAX_IDLE_SECONDS


@dataclass(frozen=True)
class BotConfig:
    transport: TransportName
    host: str
    port: int
    session_id: str
    max_duration: float
    idle_timeout: float
    connect_timeout: float
    check: bool = False
    room_url: str | None = None
    token: str | None = field(default=None, repr=False)
    body: Mapping[str, Any] = field(default_factory=dict)
    services: ServiceSettings | None = None  # None → the keyless parrot pipeline
    ice: IceSettings = field(default_factory=IceSettings)  # webrtc: STUN/TURN servers, relay-only or not
    channel: ChannelSettings | None = None  # None → a bot run by hand: webrtc signalling over HTTP

    @property
    def pipeline_name(self) -> str:
        return "services" if self.services else "parrot"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description=(
            "voicefleet voice bot: serves exactly one voice session, then exits. "
            "Prints machine-readable JSON lines on stdout (ready, connected, disconnected, ended); "
            "logs go to stderr."
        ),
        epilog=(
            "environment (flags win): DAILY_ROOM_URL, DAILY_TOKEN, VOICEFLEET_SESSION_ID, "
            "VOICEFLEET_BODY (JSON object), MAX_SESSION_SECONDS, BOT_IDLE_TIMEOUT_SECONDS, "
            "BOT_CONNECT_TIMEOUT_SECONDS, VOICEFLEET_ICE_CONFIG (webrtc: JSON RTCConfiguration), "
            "BOT_CHANNEL_URL + BOT_CHANNEL_TOKEN (dial the dispatcher; "
            "no port is opened), BOT_MAX_IDLE_SECONDS (a reserve bot), "
            "BOT_TRANSPORT (default transport without a room URL). "
            "Service pipeline: DEEPGRAM_API_KEY + OPENAI_API_KEY + "
            "CARTESIA_API_KEY (all or none); endpoint overrides DEEPGRAM_API_URL, "
            "OPENAI_BASE_URL, CARTESIA_API_URL. "
            "Exit codes: 0 session ended, 2 usage/config error, 3 could not connect. "
            "See docs/bot.md."
        ),
    )
    parser.add_argument(
        "--transport",
        choices=("webrtc", "daily"),
        help="default: daily when a room URL is given (flag or DAILY_ROOM_URL), else webrtc",
    )
    parser.add_argument("--host", default="127.0.0.1", help="webrtc: address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="webrtc: port to listen on; 0 picks a free one (default 0)")
    parser.add_argument("--room-url", help="daily: room URL (or env DAILY_ROOM_URL)")
    parser.add_argument(
        "--token", help="daily: meeting token; prefer env DAILY_TOKEN (command lines are visible to others)"
    )
    parser.add_argument("--session-id", help="session id for events and logs (or env VOICEFLEET_SESSION_ID)")
    parser.add_argument(
        "--max-duration",
        type=float,
        metavar="SECONDS",
        help=f"wall-clock cap on the session (env MAX_SESSION_SECONDS, default {DEFAULT_MAX_DURATION_SECONDS:g})",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        metavar="SECONDS",
        help="end after this long with nobody speaking "
        f"(env BOT_IDLE_TIMEOUT_SECONDS, default {DEFAULT_IDLE_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        metavar="SECONDS",
        help="exit 3 if no peer/participant connects within this long after ready "
        f"(env BOT_CONNECT_TIMEOUT_SECONDS, default {DEFAULT_CONNECT_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="build the pipeline and load the VAD model without touching the network, then exit 0",
    )
    return parser


def load_config(argv: Sequence[str] | None, env: Mapping[str, str]) -> BotConfig:
    """Parse flags and environment. argparse itself exits 2 on malformed flags."""
    args = build_parser().parse_args(argv)

    room_url = args.room_url or env.get(ENV_ROOM_URL) or None
    token = args.token or env.get(ENV_TOKEN) or None
    default = env.get(ENV_TRANSPORT) or "webrtc"
    if default not in TRANSPORTS:
        raise ConfigError(f"{ENV_TRANSPORT} must be one of {', '.join(TRANSPORTS)}, got {default!r}")
    transport: TransportName = args.transport or ("daily" if room_url else default)
    given_session = args.session_id or env.get(ENV_SESSION_ID) or None
    channel = load_channel_settings(env, cold=given_session is not None)
    # --check never joins a room, so it needs none (the Daily check builds the transport offline);
    # a reserve bot gets its room with its assignment.
    reserve = channel is not None and not channel.cold
    if transport == "daily" and not room_url and not args.check and not reserve:
        raise ConfigError("--transport daily needs a room URL (--room-url or DAILY_ROOM_URL)")
    if room_url and not room_url.startswith(("https://", "http://")):
        raise ConfigError("the room URL must be an http(s) URL")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {args.port}")

    if channel is None:
        session_id = given_session or f"local-{uuid.uuid4().hex[:12]}"
    else:
        session_id = given_session or UNASSIGNED_SESSION_ID
    return BotConfig(
        transport=transport,
        host=args.host,
        port=args.port,
        session_id=session_id,
        max_duration=_seconds(
            "max duration", args.max_duration, env, ENV_MAX_SESSION_SECONDS, DEFAULT_MAX_DURATION_SECONDS
        ),
        idle_timeout=_seconds(
            "idle timeout", args.idle_timeout, env, "BOT_IDLE_TIMEOUT_SECONDS", DEFAULT_IDLE_TIMEOUT_SECONDS
        ),
        connect_timeout=_seconds(
            "connect timeout",
            args.connect_timeout,
            env,
            "BOT_CONNECT_TIMEOUT_SECONDS",
            DEFAULT_CONNECT_TIMEOUT_SECONDS,
        ),
        check=args.check,
        room_url=room_url,
        token=token,
        body=_body(env.get(ENV_BODY)),
        services=load_service_settings(env),
        ice=_ice(env),
        channel=channel,
    )


def _ice(env: Mapping[str, str]) -> IceSettings:
    try:
        return ice_settings(env)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def load_channel_settings(env: Mapping[str, str], *, cold: bool) -> ChannelSettings | None:
    url = env.get("BOT_CHANNEL_URL", "").strip()
    if not url:
        return None
    if not url.startswith(("ws://", "wss://")):
        raise ConfigError(f"BOT_CHANNEL_URL must be a ws:// or wss:// URL, got {url!r}")
    token = env.get("BOT_CHANNEL_TOKEN", "")
    if not token:
        raise ConfigError("BOT_CHANNEL_URL is set but BOT_CHANNEL_TOKEN is not (the bot credential)")
    max_idle = _seconds("max idle", None, env, "BOT_MAX_IDLE_SECONDS", DEFAULT_MAX_IDLE_SECONDS)
    return ChannelSettings(url=url, token=token, cold=cold, max_idle_seconds=max_idle)


def load_service_settings(env: Mapping[str, str]) -> ServiceSettings | None:
    present = [name for name in SERVICE_KEY_VARIABLES if env.get(name)]
    if not present:
        return None
    missing = [name for name in SERVICE_KEY_VARIABLES if not env.get(name)]
    if missing:
        raise ConfigError(
            f"the service pipeline needs all of {', '.join(SERVICE_KEY_VARIABLES)}; "
            f"set: {', '.join(present)}; missing: {', '.join(missing)} "
            "(unset them all to run the keyless parrot pipeline)"
        )
    return ServiceSettings(
        deepgram_api_key=env["DEEPGRAM_API_KEY"],
        openai_api_key=env["OPENAI_API_KEY"],
        cartesia_api_key=env["CARTESIA_API_KEY"],
        deepgram_model=env.get("DEEPGRAM_MODEL") or None,
        openai_model=env.get("OPENAI_MODEL") or None,
        cartesia_model=env.get("CARTESIA_MODEL") or None,
        cartesia_voice_id=env.get("CARTESIA_VOICE_ID") or None,
        system_prompt=env.get("BOT_SYSTEM_PROMPT") or None,
        deepgram_url=_service_url(env, "DEEPGRAM_API_URL"),
        openai_base_url=_service_url(env, "OPENAI_BASE_URL"),
        cartesia_url=_service_url(env, "CARTESIA_API_URL"),
    )


def _service_url(env: Mapping[str, str], variable: str) -> str | None:
    url = env.get(variable, "").strip()
    if not url:
        return None
    schemes = SERVICE_URL_VARIABLES[variable]
    host = url.partition("://")[2].split("/", 1)[0]
    if not url.startswith(schemes) or not host or any(c.isspace() for c in url):
        raise ConfigError(f"{variable} must be a {' or '.join(s[:-3] for s in schemes)} URL, got {url!r}")
    return url.rstrip("/")


def _seconds(what: str, flag: float | None, env: Mapping[str, str], variable: str, default: float) -> float:
    if flag is not None:
        value, source = flag, f"--{what.replace(' ', '-')}"
    elif env.get(variable):
        source = variable
        try:
            value = float(env[variable])
        except ValueError:
            raise ConfigError(f"{variable} must be a number of seconds, got {env[variable]!r}") from None
    else:
        return default
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{source} must be a positive number of seconds, got {value:g}")
    return value


def _body(raw: str | None) -> Mapping[str, Any]:
    """The client's POST /start `body`, passed through by the dispatcher as a JSON object."""
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"VOICEFLEET_BODY is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(body, dict):
        raise ConfigError(f"VOICEFLEET_BODY must be a JSON object, got {type(body).__name__}")
    return body
