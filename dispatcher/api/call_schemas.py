"""`POST /calls`'s shapes: a call placed through a SIP trunk (docs/sip.md#outbound-calls), Twilio's Calls API
or Telnyx's TeXML Calls API (docs/phone.md#calling-out), and the outcome the SIP edge reports for it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

E164 = r"^\+[1-9][0-9]{1,14}$"


class CallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    to: str = Field(pattern=E164, description="The number called, E.164 (`+14155550100`).")
    caller_id: str = Field(alias="from", pattern=E164, description="The number the call comes from, E.164: one "
                           "the trunk lets you present.")
    trunk: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$",
                              description="The SIP edge's trunk the call goes out through (its `name`).")
    carrier: Literal["sip", "twilio", "telnyx"] | None = Field(
        default=None, description="`sip` (through `trunk`), `twilio` (its Calls API) or `telnyx` (its TeXML Calls "
        "API); unset: `sip` with a trunk, else `twilio`.")
    voicemail: Literal["hang_up", "message", "flag"] | None = Field(
        default=None, description="Twilio and Telnyx only: what a machine's answer does (default TWILIO_VOICEMAIL, "
        "TELNYX_VOICEMAIL): hang up, let the bot leave its message after the beep, or tell the bot at once "
        "(`body['answered_by']`).")
    body: dict[str, Any] | None = Field(default=None, description="Passed to the bot as `runner_args.body['body']`.")


class CallOut(BaseModel):
    session_id: str
    status: str = Field(description="`starting`: the call is handed to the SIP edge (or Twilio); follow the "
                        "session for its outcome (`GET /sessions/{id}/timeline`: `call_outcome`).")
    to: str
    caller_id: str = Field(serialization_alias="from")
    trunk: str | None = None
    carrier: str = "sip"
    call_sid: str | None = Field(default=None, description="Twilio's SID of the call (`carrier: twilio`); a "
                                 "Telnyx call's comes with its first callback, on the session's timeline.")
    paced_seconds: float | None = Field(default=None, description="How long the call waited for its trunk's "
                                         "(or carrier account's) pace.")


class CallOutcome(BaseModel):
    """What the SIP edge reports once the far end answered the INVITE (or it never went out)."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal["answered", "busy", "no_answer", "rejected", "not_placed"]
    trunk: str = Field(max_length=128)
    sip_status: int | None = Field(default=None, ge=100, le=699)
    detail: str | None = Field(default=None, max_length=256)


class BridgedLeg(BaseModel):
    """What the SIP edge reports of a bridged transfer's person's leg (docs/sip.md#handing-a-call-to-a-person):
    answered, with the trunk's outbound price; then ended. The dispatcher prices the time between, on its own
    clock, on the session's telephony line."""

    model_config = ConfigDict(extra="forbid")

    event: Literal["answered", "ended"]
    trunk: str = Field(min_length=1, max_length=64)
    direction: Literal["outbound"] | None = None
    usd_per_minute: float | None = Field(default=None, ge=0, le=10)
    increment_seconds: int | None = Field(default=None, ge=1, le=60)
    time_limit_seconds: int | None = Field(default=None, ge=1, le=86_400)
