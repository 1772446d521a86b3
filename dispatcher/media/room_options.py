"""What a caller may set on its session's Daily room and meeting token (Pipecat's
`dailyRoomProperties` / `dailyMeetingTokenProperties`).

Only presentation and self-limiting properties pass. Never ownership, identity or anything that
costs money or reaches another system (`is_owner`, `user_id` — the bot's presence is checked by
user id —, `permissions`, SIP, dial-out unless DAILY_ALLOW_DIALOUT, hooks, a bucket of the
caller's naming; cloud recording and transcription storage only into the deployment's own bucket,
DAILY_RECORDINGS_BUCKET, for a session whose recording policy is `on`), and never a longer
life than the deployment grants: `exp` and `eject_after_elapsed` may only shorten it. Anything
else is a 422 naming the property, so a caller never believes a setting took effect when it did
not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dispatcher.api_error import ApiError

# Daily REST room property → the JSON type it must have.
ROOM_FLAGS = (
    "enable_chat", "enable_emoji_reactions", "enable_screenshare", "enable_prejoin_ui",
    "start_video_off", "start_audio_off",
)  # fmt: skip
ROOM_STRINGS = ("lang", "geo")
# Meeting-token property → its self-signed claim (docs.daily.co: self-signing tokens,
# "Token property abbreviations").
TOKEN_CLAIMS = {
    "user_name": "u",
    "enable_screenshare": "ss",
    "start_video_off": "vo",
    "start_audio_off": "ao",
    "close_tab_on_exit": "ctoe",
    "lang": "uil",
    "eject_at_token_exp": "ejt",
}
TOKEN_STRINGS = ("user_name", "lang")


@dataclass(frozen=True)
class RoomOptions:
    """Validated caller choices; the room's and token's own limits are applied by `dispatcher.media.daily`."""

    room: Mapping[str, Any] = field(default_factory=dict)  # Daily room `properties`, `exp` included
    token_claims: Mapping[str, Any] = field(default_factory=dict)  # extra user-token claims, `exp`/`eje` too

    def __bool__(self) -> bool:
        return bool(self.room or self.token_claims)


# Pipecat Cloud's PSTN webhook servers start a dial-in session with a SIP room (`sip`) and
# `enable_dialout`; here dial-in has its own webhook, which makes that room itself, and dial-out
# is the deployment's choice. A refusal of either names both ways, since a team moving that server
# over meets this 422 first.
DIALIN_WAY = ("a Daily dial-in is started by voicefleet's own webhook: point Daily's room_creation_api at "
              "POST /phone/daily/dialin/{DAILY_DIALIN_SECRET}, which makes the SIP room and starts the bot "
              "(a server that only forwarded dial-ins to /start is no longer needed)")
RECORDING_WAY = ("Daily records into the team's own bucket only: set DAILY_RECORDINGS_BUCKET (bucket, region and the "
                 "role Daily assumes) and a recording policy of `on` for this key (RECORDING, RECORDING_RULES); "
                 "docs/recording.md")
# Daily's `enable_recording` values that write to `recordings_bucket` (the others record in a
# browser, or per track, which this deployment does not offer).
CLOUD_RECORDING = ("cloud",)


@dataclass(frozen=True)
class CloudRecording:
    """Daily cloud recording as this deployment and this session's policy allow it."""

    bucket: Mapping[str, Any] | None = None  # Daily's `recordings_bucket` object (DAILY_RECORDINGS_BUCKET)
    audio: bool = False  # the session's audio policy is `on`
    transcript: bool = False  # its transcript policy is `on`


NO_CLOUD_RECORDING = CloudRecording()
DIALOUT_WAY = ("a bot that dials out is started here with `enable_dialout: true` where the deployment sets "
               "DAILY_ALLOW_DIALOUT=1")


def _refuse(where: str, key: str, why: str) -> ApiError:
    return ApiError(422, "invalid_request", f"{where}.{key}: {why}")


def _typed(where: str, key: str, value: Any, kind: type) -> Any:
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _refuse(where, key, f"must be a {'boolean' if kind is bool else kind.__name__}")
    if isinstance(value, str) and not (0 < len(value) <= 100):
        raise _refuse(where, key, "must be 1-100 characters")
    return value


def _expiry(where: str, value: Any, now: int, cap: int, what: str) -> int:
    """An `exp` (epoch seconds) that may only bring the deployment's own expiry closer."""
    exp: int = _typed(where, "exp", value, int)
    if exp <= now:
        raise _refuse(where, "exp", "is in the past")
    if exp > cap:
        raise _refuse(where, "exp", f"may not be later than {what} ({cap})")
    return exp


def _cloud_recording(where: str, key: str, value: str, cloud: CloudRecording, policy_on: bool) -> str:
    """`value` when the deployment gave Daily a bucket and the session's policy keeps it, else a 422."""
    if value not in CLOUD_RECORDING:
        raise _refuse(where, key, f"must be \"cloud\" (Daily's recording into the team's bucket); {RECORDING_WAY}")
    if cloud.bucket is None:
        raise _refuse(where, key, f"this deployment configured no bucket for Daily: {RECORDING_WAY}")
    if not policy_on:
        raise _refuse(where, key, "this session's recording policy does not keep it (off, or consent, which "
                      f"Daily's recorder cannot wait for); {RECORDING_WAY}")
    return value


def room_options(
    room: Mapping[str, Any] | None,
    token: Mapping[str, Any] | None,
    *,
    now: int,
    room_exp_cap: int,
    token_exp_cap: int,
    max_session_seconds: int,
    allow_dialout: bool = False,
    cloud: CloudRecording = NO_CLOUD_RECORDING,
) -> RoomOptions:
    """Checks the caller's properties against what this deployment allows.

    `room_exp_cap` / `token_exp_cap` are the epoch seconds the deployment would set itself;
    `max_session_seconds` bounds `eject_after_elapsed`.
    """
    where = "dailyRoomProperties"
    room_out: dict[str, Any] = {}
    if room and "sip" in room:
        raise _refuse(where, "sip", f"may not be set through this API: {DIALIN_WAY}; {DIALOUT_WAY} (docs/phone.md)")
    for key, value in (room or {}).items():
        if key in ROOM_FLAGS:
            room_out[key] = _typed(where, key, value, bool)
        elif key in ROOM_STRINGS:
            room_out[key] = _typed(where, key, value, str)
        elif key == "exp":
            room_out["exp"] = _expiry(where, value, now, room_exp_cap, "this deployment's room expiry")
        elif key == "eject_at_room_exp":
            if _typed(where, key, value, bool) is not True:
                raise _refuse(where, key, "may not be turned off")
        elif key == "enable_dialout" and allow_dialout:  # the bot's phone calls out (DAILY_ALLOW_DIALOUT)
            room_out[key] = _typed(where, key, value, bool)
        elif key == "enable_dialout":
            if _typed(where, key, value, bool):  # `false` asks for nothing: Daily's default
                raise _refuse(where, key, f"this deployment does not let a bot dial out: {DIALOUT_WAY}; "
                              f"{DIALIN_WAY} (docs/phone.md)")
        elif key == "enable_recording":
            room_out[key] = _cloud_recording(where, key, _typed(where, key, value, str), cloud, cloud.audio)
            room_out["recordings_bucket"] = dict(cloud.bucket or {})
        elif key == "enable_transcription_storage":
            if _typed(where, key, value, bool):  # `false` asks for nothing: Daily's default
                _cloud_recording(where, key, "cloud", cloud, cloud.transcript)
                room_out[key] = True
                room_out["transcription_bucket"] = dict(cloud.bucket or {})
        elif key == "max_participants":
            count = _typed(where, key, value, int)
            if not 2 <= count <= 3:
                raise _refuse(where, key, "must be 2 or 3 (the bot, the caller, one reconnect)")
            room_out[key] = count
        else:
            raise _refuse(where, key, "may not be set through this API")

    where = "dailyMeetingTokenProperties"
    claims: dict[str, Any] = {}
    for key, value in (token or {}).items():
        if key in TOKEN_CLAIMS:
            claims[TOKEN_CLAIMS[key]] = _typed(where, key, value, str if key in TOKEN_STRINGS else bool)
        elif key == "exp":
            claims["exp"] = _expiry(where, value, now, token_exp_cap, "this deployment's join deadline")
        elif key == "eject_after_elapsed":
            seconds = _typed(where, key, value, int)
            if not 1 <= seconds <= max_session_seconds:
                raise _refuse(where, key, f"must be 1-{max_session_seconds} (MAX_SESSION_SECONDS)")
            claims["eje"] = seconds
        else:
            raise _refuse(where, key, "may not be set through this API")
    return RoomOptions(room=room_out, token_claims=claims)
