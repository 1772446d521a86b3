"""The bot's session environment: what every provider hands a bot, written once.

`bot/config.py` reads exactly these variables (a test feeds this module's output to it, and
checks the names it reads against these, so a rename on either side fails a test instead of a
session). Local bots get them in the process environment, ECS in the container overrides, Fly in
the machine config, Compute Engine as instance metadata that the VM's startup script copies into
the container's env file (`GCE_SESSION_METADATA`, also read by stacks/gcp_startup.py).

A bot launched with its own channel credential (every deployment with a bot channel) gets no
session secret in these values: task overrides, instance metadata and machine configs are
readable by whoever may describe them. It gets its session id, its transport and its credential
here, and the rest (`session_assignment`: the room and bot token, its TURN credentials, the
caller's `body`) as its `assign` over the channel, after its hello
(dispatcher/channel/session_secrets.py). Only a deployment without a channel, which has no other
way to reach its bots, puts them here: environment or metadata only, never a command line
(visible in `ps`, task descriptions and audit logs), never a log line. This module imports
nothing heavy: the dispatcher image and the Pulumi program both use it.
"""

from __future__ import annotations

import json

from botchannel.contract import (
    CHANNEL_TOKEN_VARIABLE,
    IDENTITY_VARIABLE,
    IMAGE_VARIABLE,
    MACHINE_ID_VARIABLE,
    Assignment,
)
from dispatcher.machines.base import LaunchSpec

SESSION_ID = "VOICEFLEET_SESSION_ID"
BODY = "VOICEFLEET_BODY"  # the client's `body` as a compact JSON object
MAX_SESSION_SECONDS = "MAX_SESSION_SECONDS"
ROOM_URL = "DAILY_ROOM_URL"  # cloud sessions only
TOKEN = "DAILY_TOKEN"  # noqa: S105 - the name of a secret (cloud sessions only), not one
# Cloud WebRTC sessions: the bot's own short-lived TURN credentials and ICE policy, as JSON in the
# shape of the client's `iceConfig` (dispatcher/media/turn.py). Holds a credential, like TOKEN.
ICE_CONFIG = "VOICEFLEET_ICE_CONFIG"
# A phone call's session (`websocket`): the image's own default transport (the bot image's is
# Daily) is not the session's, and a call has no room URL to pick it by. Empty for other sessions.
TRANSPORT = "BOT_TRANSPORT"

# Every variable a session may set, in the order providers write them.
SESSION_VARIABLES: tuple[str, ...] = (SESSION_ID, BODY, MAX_SESSION_SECONDS, ROOM_URL, TOKEN, ICE_CONFIG, TRANSPORT)

# Compute Engine: instance metadata key -> the environment variable the startup script sets.
GCE_SESSION_METADATA: dict[str, str] = {
    "session-id": SESSION_ID,
    "daily-room-url": ROOM_URL,
    "daily-token": TOKEN,
    "bot-body": BODY,
    "max-session-seconds": MAX_SESSION_SECONDS,
    "ice-config": ICE_CONFIG,
    "bot-transport": TRANSPORT,
    "bot-channel-token": CHANNEL_TOKEN_VARIABLE,
    "bot-identity": IDENTITY_VARIABLE,  # "gce" with a channel: the bot sends its instance identity token
}

# Compute Engine reserve VMs (dispatcher/machines/gce/reserve.py): metadata key -> variable, copied
# by the startup script when present. The channel's URL is the template's; its credential is this VM's own.
GCE_RESERVE_METADATA: dict[str, str] = {
    "bot-machine-id": MACHINE_ID_VARIABLE,
    "bot-image-digest": IMAGE_VARIABLE,
    "bot-channel-token": CHANNEL_TOKEN_VARIABLE,  # this VM's own credential (never the deployment's)
    "bot-identity": IDENTITY_VARIABLE,
}


# What a bot with a channel takes over it instead of from its launch values: secrets and the caller's data.
CHANNEL_DELIVERED: tuple[str, ...] = (BODY, ROOM_URL, TOKEN, ICE_CONFIG)


def session_transport(spec: LaunchSpec) -> str:
    return "websocket" if spec.transport == "websocket" else "daily" if spec.room_url else "webrtc"


def session_assignment(spec: LaunchSpec) -> Assignment:
    """The session's `assign`: what a claimed reserve bot, and a cold bot after its hello, is sent."""
    return Assignment(
        session_id=spec.session_id,
        max_session_seconds=spec.max_session_seconds,
        transport=session_transport(spec),
        body=dict(spec.body),
        room_url=spec.room_url,
        token=spec.bot_token,
        ice_config=dict(spec.ice_config) if spec.ice_config else None,
        traceparent=spec.traceparent,
        recording=spec.recording,
    )


def bot_environment(spec: LaunchSpec) -> dict[str, str]:
    """The session's launch values for the bot's environment: with a channel credential, only what
    is no secret (the `assign` brings the rest); without one, all of them (a local session has no
    room or token)."""
    env = {SESSION_ID: spec.session_id, MAX_SESSION_SECONDS: str(spec.max_session_seconds)}
    if spec.channel_token:  # this machine's own channel credential, never the deployment's secret
        env[TRANSPORT] = session_transport(spec)  # no room URL here to pick Daily by
        env[CHANNEL_TOKEN_VARIABLE] = spec.channel_token
        return env
    env[BODY] = json.dumps(dict(spec.body), separators=(",", ":"))
    if spec.room_url:
        env[ROOM_URL] = spec.room_url
    if spec.bot_token:
        env[TOKEN] = spec.bot_token
    if spec.ice_config:
        env[ICE_CONFIG] = json.dumps(dict(spec.ice_config), separators=(",", ":"))
    if spec.transport == "websocket":
        env[TRANSPORT] = spec.transport
    return env


def gce_metadata_items(spec: LaunchSpec) -> list[dict[str, str]]:
    """The same values as instance metadata: every key the startup script reads is present
    (empty when unset), because it copies each one unconditionally."""
    env = bot_environment(spec)
    if spec.channel_token:  # the channel admits its hello with the VM's identity token only
        env[IDENTITY_VARIABLE] = "gce"
    return [{"key": key, "value": env.get(variable, "")} for key, variable in GCE_SESSION_METADATA.items()]
