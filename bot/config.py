"""Command line + environment → `BotConfig`.

This module imports nothing heavy on purpose: `python -m bot --help` and usage errors must answer
in milliseconds, before any Pipecat import. Flags win over environment variables; secrets (the
Daily token, service API keys) are read from the environment in the cloud and never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bot.channel_tls import CA_FILE_VARIABLE, ca_file
from bot.ice import CONFIG_VARIABLE as ICE_CONFIG_VARIABLE
from bot.ice import IceSettings, ice_settings
from bot.identity import identity_source
from bot.user_bot import DEFAULT_BOT_FILE, bot_file_path
from voicefleet_settings.model import INTEGER, NUMBER
from voicefleet_settings.read import (
    SettingsError,
    entry,
    setting_bool,
    setting_choice,
    setting_float,
    setting_int,
    setting_text,
)

TransportName = Literal["webrtc", "daily", "websocket"]

ENV_IDLE_TIMEOUT = "BOT_IDLE_TIMEOUT_SECONDS"
ENV_CONNECT_TIMEOUT = "BOT_CONNECT_TIMEOUT_SECONDS"
ENV_MAX_IDLE = "BOT_MAX_IDLE_SECONDS"  # a reserve bot's own cap; the dispatcher retires it sooner
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
# The transport when neither --transport nor a room URL picks one (default webrtc). An image sets
# it to the transport it carries: the bot image is Daily-only, so a bare `python -m bot --check`
# there checks Daily instead of failing on the missing aiortc.
ENV_TRANSPORT = "BOT_TRANSPORT"
# What a session's provider sets (dispatcher/machines/bot_environment.py); BOT_TRANSPORT only for a
# phone call's session, whose image default (Daily) is not its transport.
SESSION_VARIABLES = (
    ENV_SESSION_ID, ENV_BODY, ENV_MAX_SESSION_SECONDS, ENV_ROOM_URL, ENV_TOKEN, ENV_ICE_CONFIG, ENV_TRANSPORT
)
TRANSPORTS: tuple[TransportName, ...] = ("webrtc", "daily", "websocket")
TRANSPORT_NAMES: dict[str, TransportName] = {name: name for name in TRANSPORTS}
# The session's cap: a value the dispatcher hands each bot (its own setting, at least 10 s there); the bot
# host takes any positive number of seconds, as its --max-duration does, so it is read here, not by the
# catalogue's bounds, which are the dispatcher's. Its default is the catalogue's.
DEFAULT_MAX_DURATION_SECONDS = float(entry(ENV_MAX_SESSION_SECONDS, INTEGER).default or 0)

EXIT_USAGE = 2


class ConfigError(Exception):
    """Bad flags or environment: the bot exits `EXIT_USAGE` (2) with this message."""


@dataclass(frozen=True)
class ChannelSettings:
    """The control channel (botchannel/contract.py): set when a dispatcher runs this bot.

    With a channel the bot listens on no port: signalling arrives over the channel it dialled.
    """

    url: str
    token: str = field(repr=False)  # this machine's own channel credential: environment only ("": none)
    # Launched for one session (its id given): it still awaits `assign`, which brings that
    # session's values (they are not in its launch environment). False: a reserve bot.
    cold: bool
    max_idle_seconds: float
    # Where this machine's identity token comes from (BOT_IDENTITY: gce, fly), sent in every hello;
    # None: the provider has none (bot/identity.py).
    identity: str | None = None
    # BOT_CHANNEL_CA_FILE: the CA a wss:// channel is checked against; None: the system's (bot/channel_tls.py).
    ca_file: str | None = None


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
    bot_file: Path = DEFAULT_BOT_FILE  # the user's bot (BOT_FILE); default: the parrot example
    ice: IceSettings = field(default_factory=IceSettings)  # webrtc: STUN/TURN servers, relay-only or not
    channel: ChannelSettings | None = None  # None → a bot run by hand: webrtc signalling over HTTP


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description=(
            "voicefleet bot host: runs one Pipecat bot file (BOT_FILE, an `async def bot(runner_args)` "
            "as Pipecat's runner defines it) for exactly one voice session, then exits. "
            "Prints machine-readable JSON lines on stdout (ready, connected, disconnected, ended); "
            "logs go to stderr."
        ),
        epilog=(
            "environment (flags win): DAILY_ROOM_URL, DAILY_TOKEN, VOICEFLEET_SESSION_ID, "
            "VOICEFLEET_BODY (JSON object), MAX_SESSION_SECONDS, BOT_IDLE_TIMEOUT_SECONDS, "
            "BOT_CONNECT_TIMEOUT_SECONDS, VOICEFLEET_ICE_CONFIG (webrtc: JSON RTCConfiguration), "
            "BOT_CHANNEL_URL + BOT_CHANNEL_TOKEN (dial the dispatcher; "
            "no port is opened), BOT_MAX_IDLE_SECONDS (a reserve bot), "
            "BOT_TRANSPORT (default transport without a room URL), "
            "BOT_FILE (the bot to run; default: voicefleet's parrot example, which needs no keys). "
            "Exit codes: 0 session ended, 2 usage/config error, 3 could not connect, "
            "4 the bot file is broken (the ended event's detail names the file and the exception). "
            "See docs/bot.md."
        ),
    )
    parser.add_argument(
        "--transport",
        choices=TRANSPORTS,
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
        f"(env BOT_IDLE_TIMEOUT_SECONDS, default {_default(ENV_IDLE_TIMEOUT)})",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        metavar="SECONDS",
        help="exit 3 if no peer/participant connects within this long after ready "
        f"(env BOT_CONNECT_TIMEOUT_SECONDS, default {_default(ENV_CONNECT_TIMEOUT)})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="import the bot file and load the VAD model without touching the network, then exit 0",
    )
    return parser


def _default(variable: str) -> str:
    """A number setting's catalogue default, as the help shows it."""
    return entry(variable, NUMBER).default or ""


def load_config(argv: Sequence[str] | None, env: Mapping[str, str]) -> BotConfig:
    """Parse flags and environment. argparse itself exits 2 on malformed flags; a setting the
    catalogue refuses (voicefleet_settings/read.py: one line naming it) is a ConfigError, as any other."""
    args = build_parser().parse_args(argv)
    try:
        check_host_settings(env)
        return _load_config(args, env)
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None


def check_host_settings(env: Mapping[str, str]) -> None:
    """The settings the host reads later in a session (its logs, the WebRTC candidates and jitter
    buffer), read once at start, so a bad one stops the bot before it is ready, not mid-call."""
    setting_choice(env, "BOT_LOG_LEVEL")
    setting_choice(env, "LOG_FORMAT")
    setting_bool(env, "VOICEFLEET_ICE_LOOPBACK")
    setting_int(env, "VOICEFLEET_AUDIO_JITTER_PREFETCH")


def _load_config(args: argparse.Namespace, env: Mapping[str, str]) -> BotConfig:
    room_url = args.room_url or setting_text(env, ENV_ROOM_URL) or None
    token = args.token or setting_text(env, ENV_TOKEN) or None
    default = TRANSPORT_NAMES[setting_choice(env, ENV_TRANSPORT)]  # the catalogue's choices are TRANSPORTS
    transport: TransportName = args.transport or ("daily" if room_url else default)
    given_session = args.session_id or setting_text(env, ENV_SESSION_ID) or None
    channel = load_channel_settings(env, cold=given_session is not None)
    # --check never joins a room, so it needs none (the Daily check builds the transport offline);
    # a bot with a channel, reserve or cold, gets its room with its assignment over it.
    if transport == "daily" and not room_url and not args.check and channel is None:
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
        max_duration=_max_duration(args.max_duration, env),
        idle_timeout=_flag_seconds("idle timeout", args.idle_timeout) or setting_float(env, ENV_IDLE_TIMEOUT),
        connect_timeout=(_flag_seconds("connect timeout", args.connect_timeout)
                         or setting_float(env, ENV_CONNECT_TIMEOUT)),
        check=args.check,
        room_url=room_url,
        token=token,
        body=_body(setting_text(env, ENV_BODY)),
        bot_file=bot_file_path(env),
        ice=_ice(env),
        channel=channel,
    )


def _ice(env: Mapping[str, str]) -> IceSettings:
    try:
        return ice_settings(env)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def load_channel_settings(env: Mapping[str, str], *, cold: bool) -> ChannelSettings | None:
    url = setting_text(env, "BOT_CHANNEL_URL")
    if not url:
        return None
    if not url.startswith(("ws://", "wss://")):
        raise ConfigError(f"BOT_CHANNEL_URL must be a ws:// or wss:// URL, got {url!r}")
    token = setting_text(env, "BOT_CHANNEL_TOKEN")
    try:
        identity = identity_source(env)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    # A Kubernetes warm pool's pod has no credential of its own (its template is every pod's): its
    # pod's identity token alone says which bot it is (docs/kubernetes.md, "The warm path").
    if not token and identity != "k8s":
        raise ConfigError("BOT_CHANNEL_URL is set but BOT_CHANNEL_TOKEN is not (the bot credential; only a "
                          "Kubernetes warm pool's pod, BOT_IDENTITY=k8s, dials with its identity alone)")
    return ChannelSettings(url=url, token=token, cold=cold, max_idle_seconds=setting_float(env, ENV_MAX_IDLE),
                           identity=identity, ca_file=_channel_ca(env, url))


def _channel_ca(env: Mapping[str, str], url: str) -> str | None:
    """BOT_CHANNEL_CA_FILE: the CA a wss:// channel's certificate is checked against (bot/channel_tls.py)."""
    ca = ca_file(env)
    if ca is None:
        return None
    if not url.startswith("wss://"):
        raise ConfigError(f"{CA_FILE_VARIABLE} is set but BOT_CHANNEL_URL is {url.split(':', 1)[0]}://: a CA "
                          "checks a wss:// channel only; unset it, or dial the channel's wss:// URL")
    if not os.path.isfile(ca):
        raise ConfigError(f"{CA_FILE_VARIABLE}={ca} is not a file: mount the channel's CA certificate there")
    return ca


def _max_duration(flag: float | None, env: Mapping[str, str]) -> float:
    """--max-duration, else MAX_SESSION_SECONDS (any positive number of seconds), else the catalogue's default."""
    raw = env.get(ENV_MAX_SESSION_SECONDS, "").strip()
    if flag is not None or not raw:
        return _flag_seconds("max duration", flag) or DEFAULT_MAX_DURATION_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{ENV_MAX_SESSION_SECONDS} must be a number of seconds, got {raw!r}") from None
    return _positive(ENV_MAX_SESSION_SECONDS, value)


def _flag_seconds(what: str, flag: float | None) -> float | None:
    """A seconds flag, when given: positive and finite (the variables' bounds are the catalogue's)."""
    return None if flag is None else _positive(f"--{what.replace(' ', '-')}", flag)


def _positive(source: str, value: float) -> float:
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
