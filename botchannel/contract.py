"""The bot control channel's message contract: one module, imported by the bot and the dispatcher.

A bot dials *out* to the dispatcher (a WebSocket at `CHANNEL_PATH`, `Authorization: Bearer
<BOT_CHANNEL_TOKEN>`); every frame is one JSON text message `{"type": ..., ...}`:

    bot → dispatcher   hello    {protocol, machine_id, image, capabilities, session_id|null, identity?}
    dispatcher → bot   welcome  {}                                   (the bot is registered)
    either way         request  {id, method, params}                 (a reply is owed)
                       reply    {id, ok: true, result} | {id, ok: false, error: {status, code, message}}
    bot → dispatcher   report   {event, session_id, t, reason?, detail?, exit_code?, conversation?}

The methods (`assign`, `freeze`, `webrtc.offer`, `webrtc.ice`, `media.attach`), the reports and
their rules (one session per bot, ever) are in docs/channel.md; a report's `t` (a finite number)
is the bot's clock, which the dispatcher does not trust: it times a report when it arrives. Pure
standard library: the dispatcher's image carries no Pipecat. `parse_frame` rejects anything
malformed with `ProtocolError`, so neither side trusts the other's JSON blindly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from botchannel.conversation import conversation_figures
from botchannel.json_input import parse_json
from botchannel.recording import RecordingPlan
from botchannel.transport_use import parse_transport
from botchannel.usage import UsageError, parse_usage
from botchannel.utf8_text import may_hold_surrogates, utf8_strings

PROTOCOL_VERSION = 1
CHANNEL_PATH = "/bots/channel"
# A bot's dial: one try's deadline, and a new bot's tries again after each delay (~2 min, as long as
# a cold bot's values may take to reach it) while its task's network may not carry traffic yet.
# Here, not in bot/, because the stacks' cold-start prior for Cloud Run bots is computed from them.
DIAL_TIMEOUT_SECONDS = 10.0
FIRST_DIAL_DELAYS_SECONDS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 30.0, 30.0)
# Environment of a bot that dials a dispatcher: where, and the per-deployment credential.
CHANNEL_URL_VARIABLE = "BOT_CHANNEL_URL"
CHANNEL_TOKEN_VARIABLE = "BOT_CHANNEL_TOKEN"  # noqa: S105 (a variable name, not a secret)
# A wss:// channel's CA certificate file (bot/channel_tls.py); a Kubernetes bot pod's is mounted by its provider.
CA_FILE_VARIABLE = "BOT_CHANNEL_CA_FILE"
# Optional: the provider's id for this machine (Fly sets FLY_MACHINE_ID; local bots get one).
MACHINE_ID_VARIABLE = "BOT_MACHINE_ID"
IMAGE_VARIABLE = "BOT_IMAGE_DIGEST"

# The provider's identity source a bot fetches its identity token from (bot/identity.py): set by the
# provider with the launch values. A local bot's is a nonce it writes through the socket it was
# launched with, whose descriptor IDENTITY_FD_VARIABLE names (dispatcher/machines/local/launch_proof.py).
IDENTITY_VARIABLE = "BOT_IDENTITY"
IDENTITY_SOURCES = ("gce", "fly", "ecs", "local", "cloudrun", "modal", "k8s")
IDENTITY_FD_VARIABLE = "BOT_IDENTITY_FD"
# A Cloud Run execution's own nonce, given with its run: its bot's identity token carries it in its
# audience's fragment (`#<nonce>.<dial's own>`), and Cloud Run names the execution in the task's
# env (CLOUD_RUN_EXECUTION), which the hello's machine id is (dispatcher/machines/cloudrun/identity.py).
EXECUTION_NONCE_VARIABLE = "VOICEFLEET_EXECUTION_NONCE"
CLOUD_RUN_EXECUTION_VARIABLE = "CLOUD_RUN_EXECUTION"
# A full-format instance identity token is ~1 KB; an ECS task's presigned sts:GetCallerIdentity
# URL (its session token included), base64url-encoded, ~3 KB.
MAX_IDENTITY_CHARS = 8192
MAX_RESUME_CHARS = 64

MAX_TRACEPARENT_CHARS = 55  # version-traceid-parentid-flags (W3C Trace Context, level 1)
MAX_FRAME_BYTES = 256 * 1024  # an SDP offer is a few KB; the client's `body` at most 4 KB

METHOD_ASSIGN = "assign"
METHOD_OFFER = "webrtc.offer"
METHOD_ICE = "webrtc.ice"
# A phone call's media: {path, token}. The bot dials `path` on its channel's address with
# `Authorization: Bearer <token>` (one-time, this session only); the carrier's frames flow there.
METHOD_MEDIA_ATTACH = "media.attach"
# An idle bot's machine is about to be suspended (or stopped): after its channel drops, dial again.
METHOD_FREEZE = "freeze"
# End the session now (a platform that cannot stop the machine itself: Cerebrium). The bot ends as a
# stopped one does (`ended`, reason `signal`) and exits.
METHOD_STOP = "stop"
# Is the bot at the far end still there? No bot has a handler: any reply (an `unknown_method` error
# included) is the answer, so every bot, of any version, answers it.
METHOD_PING = "ping"

ReportEvent = Literal["ready", "joined", "first_audio", "error", "slow_answer", "ended"]
# `error`: the pipeline reported a fatal error (a service that can no longer do its job), with its
# `detail`; the session may still be up. `slow_answer`: a speech-to-speech model answered a turn late
# (bot/slow_answer.py), its `detail` says how late. A dispatcher that predates one logs the frame and drops it.
REPORT_EVENTS: tuple[str, ...] = ("ready", "joined", "first_audio", "error", "slow_answer", "ended")


class ProtocolError(ValueError):
    """A frame that does not follow this contract."""


class RequestFailed(Exception):
    """A request's handler refused it; travels back as a failed `reply` (HTTP-like status)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Hello:
    machine_id: str
    image: str = "unknown"  # the bot image digest (or "dev" for a local checkout)
    capabilities: tuple[str, ...] = ()  # e.g. ("webrtc",) or ("daily",)
    session_id: str | None = None  # None: an idle reserve bot waiting for `assign`
    protocol: int = PROTOCOL_VERSION
    # The machine's identity token (a JWT; a credential of its own, like the bearer): never in a repr.
    identity: str | None = field(default=None, repr=False)
    # The resume key its last welcome gave it (a bot that dials with its identity alone): never in a repr.
    resume: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Welcome:
    # A bot that dials with its identity alone (a Kubernetes pool bot, whose pod's token a copy presents
    # too) is given a key of its own: its re-dials present it, and a hello for its pod without it is refused.
    resume: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Request:
    id: int
    method: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplyError:
    status: int  # an HTTP status the dispatcher can pass on (400 bad offer, 409 already assigned…)
    code: str
    message: str


@dataclass(frozen=True)
class Reply:
    id: int
    result: Mapping[str, Any] | None = None
    error: ReplyError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Report:
    event: str
    session_id: str
    t: float  # the bot's wall clock, epoch seconds (the dispatcher times a report on receipt)
    reason: str | None = None
    detail: str | None = None
    exit_code: int | None = None
    # `ended` only: what the session's services used (botchannel/usage.py); None: not reported
    usage: tuple[dict[str, Any], ...] | None = None
    # `ended` only: the session's conversation in figures (botchannel/conversation.py), where the host
    # observed one; a dispatcher that predates it ignores the field.
    conversation: Mapping[str, Any] | None = None
    # `ended` only: how the WebRTC call's media went (botchannel/transport_use.py), for the relay's
    # share of its cost; a dispatcher that predates it ignores the field.
    transport: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Assignment:
    """What `assign` hands an idle bot: exactly one session."""

    session_id: str
    max_session_seconds: int
    transport: str = "webrtc"  # "webrtc" (signalling over this channel), "daily" or "websocket" (a call)
    body: Mapping[str, Any] = field(default_factory=dict)  # the client's `body`
    room_url: str | None = None  # daily
    token: str | None = field(default=None, repr=False)  # daily: the bot's meeting token (a secret)
    # webrtc in the cloud: the bot's own ICE servers and TURN credentials, in the shape of
    # VOICEFLEET_ICE_CONFIG (bot/ice.py); a secret, like the token.
    ice_config: Mapping[str, Any] | None = field(default=None, repr=False)
    # The W3C trace context of the session's start: the bot's spans join its trace. Optional; a
    # host that does not know it ignores it, a malformed one is ignored too (tracing never refuses).
    traceparent: str | None = None
    # Record this session (botchannel/recording.py): how. None: the session is not recorded.
    recording: RecordingPlan | None = None

    def params(self) -> dict[str, Any]:
        fields = {k: v for k, v in _fields(self).items() if v is not None}
        if self.recording is not None:
            fields["recording"] = self.recording.params()
        return fields

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Assignment:
        session_id = _text(params, "session_id")
        seconds = params.get("max_session_seconds")
        if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds <= 0:
            raise ProtocolError("assign: max_session_seconds must be a positive integer")
        transport = params.get("transport", "webrtc")
        if transport not in ("webrtc", "daily", "websocket"):
            raise ProtocolError(f"assign: unknown transport {transport!r}")
        body = params.get("body", {})
        if not isinstance(body, dict):
            raise ProtocolError("assign: body must be an object")
        room_url, token = params.get("room_url"), params.get("token")
        if transport == "daily" and not (isinstance(room_url, str) and isinstance(token, str)):
            raise ProtocolError("assign: a daily assignment needs room_url and token")
        ice_config = params.get("ice_config")
        if ice_config is not None and not isinstance(ice_config, dict):
            raise ProtocolError("assign: ice_config must be an object")
        traceparent = params.get("traceparent")
        if not (isinstance(traceparent, str) and len(traceparent) <= MAX_TRACEPARENT_CHARS):
            traceparent = None
        recording = params.get("recording")
        if recording is not None:
            if not isinstance(recording, dict):
                raise ProtocolError("assign: recording must be an object")
            try:
                recording = RecordingPlan.from_params(recording)
            except ValueError as exc:
                raise ProtocolError(f"assign: {exc}") from None
        return cls(session_id, seconds, transport, body, room_url, token, ice_config, traceparent, recording)


Frame = Hello | Welcome | Request | Reply | Report


def encode(frame: Frame) -> str:
    if isinstance(frame, Reply):
        payload: dict[str, Any] = {"id": frame.id, "ok": frame.ok}
        if frame.error is not None:
            payload["error"] = _fields(frame.error)
        else:
            payload["result"] = dict(frame.result or {})
        return json.dumps({"type": "reply", **payload}, separators=(",", ":"))
    kind = {Hello: "hello", Welcome: "welcome", Request: "request", Report: "report"}[type(frame)]
    fields = _fields(frame)
    if isinstance(frame, Hello):
        fields["capabilities"] = list(frame.capabilities)
        if frame.identity is None:
            del fields["identity"]
    if isinstance(frame, Hello | Welcome) and frame.resume is None:
        del fields["resume"]
    if isinstance(frame, Request):
        fields["params"] = dict(frame.params)
    if isinstance(frame, Report):
        if frame.usage is None:
            del fields["usage"]
        else:
            fields["usage"] = list(frame.usage)
        if frame.conversation is None:
            del fields["conversation"]
        else:
            fields["conversation"] = dict(frame.conversation)
        if frame.transport is None:
            del fields["transport"]
        else:
            fields["transport"] = dict(frame.transport)
    return json.dumps({"type": kind, **fields}, separators=(",", ":"))


def parse_frame(raw: str | bytes) -> Frame:
    if len(raw) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame larger than {MAX_FRAME_BYTES} bytes")
    if not isinstance(raw, str):
        # Strictly: json.loads(bytes) decodes with surrogatepass, so a surrogate's own bytes (ED A0 80)
        # would be a lone surrogate with no `\u` escape for may_hold_surrogates to see.
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("frame is not UTF-8") from None
    try:
        data = parse_json(raw)
    except ValueError:
        raise ProtocolError("frame is not JSON") from None
    if may_hold_surrogates(raw):  # every string the other side sent, UTF-8-safe before any field is read
        data = utf8_strings(data)
    if not isinstance(data, dict):
        raise ProtocolError("frame is not a JSON object")
    kind = data.get("type")
    if kind == "hello":
        protocol = data.get("protocol")
        if protocol != PROTOCOL_VERSION:
            raise ProtocolError(f"unsupported protocol {protocol!r} (this side speaks {PROTOCOL_VERSION})")
        caps = data.get("capabilities", [])
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise ProtocolError("hello: capabilities must be a list of strings")
        return Hello(
            machine_id=_identifier(data, "machine_id"),
            image=_identifier(data, "image"),
            capabilities=tuple(caps),
            session_id=None if data.get("session_id") is None else _identifier(data, "session_id"),
            identity=_identity(data),
            resume=_resume(data),
        )
    if kind == "welcome":
        return Welcome(resume=_resume(data))
    if kind == "request":
        params = data.get("params", {})
        if not isinstance(params, dict):
            raise ProtocolError("request: params must be an object")
        return Request(id=_id(data), method=_text(data, "method"), params=params)
    if kind == "reply":
        if data.get("ok") is True:
            result = data.get("result", {})
            if not isinstance(result, dict):
                raise ProtocolError("reply: result must be an object")
            return Reply(id=_id(data), result=result)
        error = data.get("error")
        if not isinstance(error, dict) or not isinstance(error.get("status"), int):
            raise ProtocolError("reply: a failed reply needs error {status, code, message}")
        return Reply(id=_id(data), error=ReplyError(error["status"], _text(error, "code"), _text(error, "message")))
    if kind == "report":
        event = _text(data, "event")
        if event not in REPORT_EVENTS:
            raise ProtocolError(f"report: unknown event {event!r}")
        t = _finite(data.get("t"))
        if t is None:
            raise ProtocolError("report: t must be a finite number")
        exit_code = data.get("exit_code")
        if exit_code is not None and not isinstance(exit_code, int):
            raise ProtocolError("report: exit_code must be an integer")
        return Report(
            event=event,
            session_id=_identifier(data, "session_id"),
            t=t,
            reason=_optional_text(data, "reason"),
            detail=_optional_text(data, "detail"),
            exit_code=exit_code,
            usage=_usage(data) if event == "ended" else None,
            conversation=conversation_figures(data.get("conversation")) if event == "ended" else None,
            transport=_transport(data) if event == "ended" else None,
        )
    raise ProtocolError(f"unknown frame type {kind!r}")


def _usage(data: Mapping[str, Any]) -> tuple[dict[str, Any], ...] | None:
    if data.get("usage") is None:
        return None
    try:
        return parse_usage(data["usage"])
    except UsageError as exc:
        raise ProtocolError(f"report: {exc}") from None


def _transport(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """The end's transport, or None when absent or not as botchannel/transport_use.py has it: a bad
    measure leaves the relay not counted (the cost says so), never the end itself refused."""
    try:
        return None if data.get("transport") is None else parse_transport(data["transport"])
    except UsageError:
        return None


def _fields(obj: object) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}  # type: ignore[attr-defined]


def _finite(value: object) -> float | None:
    """A JSON number as a finite float; None for anything else, including the `NaN`, `Infinity` and
    `1e999` Python's json reads, and an integer too large for a float."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > 512:
        raise ProtocolError(f"`{key}` must be a non-empty string of at most 512 characters")
    return value


def _identifier(data: Mapping[str, Any], key: str) -> str:
    """A name the other side routes and logs by: printable ASCII, no spaces or control characters."""
    value = _text(data, key)
    if not (value.isascii() and value.isprintable() and " " not in value):
        raise ProtocolError(f"`{key}` must be printable ASCII without spaces")
    return value


def _resume(data: Mapping[str, Any]) -> str | None:
    """A resume key: base64url, as the dispatcher makes it (`secrets.token_urlsafe`)."""
    value = data.get("resume")
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_RESUME_CHARS or \
            not all(c.isascii() and (c.isalnum() or c in "-_") for c in value):
        raise ProtocolError(f"`resume` must be a base64url string of at most {MAX_RESUME_CHARS} characters")
    return value


def _identity(data: Mapping[str, Any]) -> str | None:
    """A JWT's compact form (or, from an ECS task, one base64url segment): base64url segments and
    dots, nothing a log line could be forged with."""
    value = data.get("identity")
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_IDENTITY_CHARS:
        raise ProtocolError(f"`identity` must be a string of at most {MAX_IDENTITY_CHARS} characters")
    if not all(c.isascii() and (c.isalnum() or c in "-_.") for c in value):
        raise ProtocolError("`identity` must be a compact JWT (base64url segments and dots)")
    return value


def _optional_text(data: Mapping[str, Any], key: str) -> str | None:
    return None if data.get(key) is None else _text(data, key)


def _id(data: Mapping[str, Any]) -> int:
    value = data.get("id")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError("`id` must be a non-negative integer")
    return value
