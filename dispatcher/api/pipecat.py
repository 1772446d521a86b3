"""`POST /start` in Pipecat's dialect: what a request means, and the answer's field names.

Pipecat's clients and tools send one of a few shapes (README "Use it from a Pipecat client"):
the client docs' free-form `requestData` (the bot's data at the top level), Pipecat Cloud's
`{createDailyRoom, body, dailyRoomProperties, ...}` and the dev runner's `{transport, body}`.
All of them work here, with the meaning the dev runner gives them where it applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dispatcher.api.phone_start import PHONE_TRANSPORTS
from dispatcher.api.schemas import StartRequest
from dispatcher.errors import ApiError

# The keys that make a request Pipecat-shaped (everything of Pipecat's but `body`).
PIPECAT_KEYS = ("transport", "createDailyRoom", "enableDefaultIceServers", "dailyRoomProperties",
                "dailyMeetingTokenProperties")  # fmt: skip


@dataclass(frozen=True)
class StartPlan:
    body: dict[str, Any]
    transport: str
    pipecat_shaped: bool  # answer with Pipecat's fields only (see `start_answer`)
    default_ice_servers: bool = False
    room_properties: Mapping[str, Any] | None = field(default=None)
    token_properties: Mapping[str, Any] | None = field(default=None)


def plan_start(request: StartRequest | None, offered: tuple[str, ...]) -> StartPlan:
    request = request or StartRequest()
    extra = dict(request.model_extra or {})
    if request.body is not None and extra:
        raise ApiError(
            422,
            "invalid_request",
            f"unknown field(s) beside `body`: {', '.join(sorted(extra))}; put the bot's data inside `body`",
        )
    body = request.body if request.body is not None else extra
    given = request.model_fields_set
    return StartPlan(
        body=body,
        transport=_transport(request, offered),
        pipecat_shaped=bool(given & set(PIPECAT_KEYS)) or bool(extra),
        default_ice_servers=request.enableDefaultIceServers is True,
        room_properties=request.dailyRoomProperties,
        token_properties=request.dailyMeetingTokenProperties,
    )


def _transport(request: StartRequest, offered: tuple[str, ...]) -> str:
    """The dev runner's rule: an explicit `transport`; else `createDailyRoom: true` means Daily
    (and, as on Pipecat Cloud, `false` means a session without a Daily room); else the default."""
    wanted: str | None = request.transport
    reason = f"transport {wanted!r}"
    if wanted is None and request.createDailyRoom is not None:
        wanted = "daily" if request.createDailyRoom else "webrtc"
        reason = f"createDailyRoom: {str(request.createDailyRoom).lower()} (transport {wanted!r})"
    if wanted is None:
        return offered[0]
    if wanted not in offered:
        raise ApiError(400, "transport_not_offered",
                       f"{reason} is not offered by this deployment; {offers(offered)}{turned_on_by(wanted, offered)}")
    if wanted == "daily" and request.createDailyRoom is False:
        raise ApiError(400, "transport_not_offered", "createDailyRoom: false contradicts transport 'daily': "
                       "a Daily session always gets its own room")  # fmt: skip
    return wanted


def offers(web: tuple[str, ...]) -> str:
    """Every transport a start takes: the web ones this deployment serves, and the streams every
    deployment takes (a carrier's, and `websocket` for any other client: Vonage, a SIP gateway)."""
    return (f"it offers {' and '.join(web)} (a web session) and {', '.join(PHONE_TRANSPORTS)} (a phone or "
            "WebSocket stream: the answer's `{wsUrl}/{token}` is where it connects; Vonage and any other "
            "WebSocket carrier use `websocket`)")


def turned_on_by(wanted: str, offered: tuple[str, ...]) -> str:
    """What serves a web transport that is not offered, and what to start with meanwhile."""
    how = {
        "daily": "the dispatcher's TRANSPORTS lists daily (TRANSPORTS=" + ",".join((*offered, "daily")) + "; a "
                 "local dispatcher also needs DAILY_API_KEY, a stack's comes from its dailyApiKey secret)",
        "webrtc": "the dispatcher's TRANSPORTS lists webrtc (TRANSPORTS=" + ",".join((*offered, "webrtc")) + "; in "
                  "the cloud it takes a TURN relay: a stack's `turn` setting, or TURN_URLS and BOT_CHANNEL_TOKEN)",
    }.get(wanted)
    if how is None:
        return ""
    return f". It is served once {how}; or start with transport {offered[0]!r}, which this deployment serves"


def start_answer(full: dict[str, Any], plan: StartPlan) -> dict[str, Any]:
    """The start answer: ours with Pipecat's names beside them, or only Pipecat's.

    Pipecat's transports pass every key of the answer on: SmallWebRTC warns about each one it
    does not know, and the Daily transport hands them all to `daily.join`, which warns too. A
    Pipecat-shaped request therefore gets exactly what its transport reads — `sessionId` and
    `iceConfig` for WebRTC, `dailyRoom` and `dailyToken` for Daily — and the session's URL is
    in the `Location` header either way.
    """
    answer = {**full, **pipecat_names(full)}
    if not plan.pipecat_shaped:
        return answer
    keep = ("sessionId", "iceConfig") if plan.transport == "webrtc" else ("dailyRoom", "dailyToken")
    return {k: answer[k] for k in keep if k in answer}


def pipecat_names(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Pipecat's names for the fields we also answer under our own."""
    names = {"session_id": "sessionId", "room_url": "dailyRoom", "token": "dailyToken"}
    return {pipecat: fields[ours] for ours, pipecat in names.items() if fields.get(ours) is not None}
