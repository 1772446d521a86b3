"""The call events in a Meta webhook: `object: whatsapp_business_account`, its `entry[].changes[]` whose
`field` is `calls`, each change's `value.metadata.phone_number_id` and `value.calls[]`:

    {"id": "wacid.…", "from": "<caller's wa_id>", "to": "<business number>", "event": "connect",
     "timestamp": "1671644824", "session": {"sdp_type": "offer", "sdp": "<RFC 8866 SDP>"}}
    {"id": "wacid.…", …, "event": "terminate", "status": "COMPLETED", "duration": 42}

Meta sends every subscribed field to the one URL (messages, statuses…): a change of another field, a
`calls` change without `calls[]` (a business-initiated call's `statuses[]`: RINGING, ACCEPTED…), or a call
event of another kind (a business-initiated call's answer), is skipped, not refused. Fields Meta may add
are ignored. A change or call event that is malformed is logged and skipped, never the whole delivery:
Meta retries a refused delivery for days, and the calls batched with it would never be taken. Only a body
that is no WhatsApp Business webhook at all is refused (`ValueError`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger("dispatcher.whatsapp")
MAX_ID_CHARS = 256
MAX_SDP_CHARS = 32_768  # an audio offer is a few KB; a bound before anything reads it

EventKind = Literal["connect", "terminate"]


@dataclass(frozen=True)
class CallEvent:
    event: EventKind
    call_id: str
    phone_number_id: str
    caller: str  # the WhatsApp user's wa_id (`from`)
    business: str  # the number called (`to`)
    timestamp: str
    offer: str | None = None  # connect: the caller's SDP offer
    status: str | None = None  # terminate: COMPLETED, FAILED, REJECTED…
    duration: int | None = None  # terminate: seconds, for a call that was answered

    def shown(self) -> dict[str, Any]:
        """What the timeline keeps of it: never the SDP."""
        fields: dict[str, Any] = {"call_id": self.call_id, "call_event": self.event, "timestamp": self.timestamp}
        if self.status is not None:
            fields["status"] = self.status
        if self.duration is not None:
            fields["duration"] = self.duration
        return fields


def one_event_webhook(event: CallEvent) -> dict[str, Any]:
    """A webhook carrying `event` alone, as `call_events` reads it back: what a region relays of a later event
    (never a connect's offer)."""
    call: dict[str, Any] = {"id": event.call_id, "from": event.caller, "to": event.business, "event": event.event,
                            "timestamp": event.timestamp}
    call.update({name: value for name, value in (("status", event.status), ("duration", event.duration))
                 if value is not None})
    value = {"metadata": {"phone_number_id": event.phone_number_id}, "calls": [call]}
    return {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "calls", "value": value}]}]}


def call_events(payload: Any) -> list[CallEvent]:
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        raise ValueError("object: expected whatsapp_business_account (a WhatsApp Business webhook)")
    events: list[CallEvent] = []
    for where, change in _changes(payload):
        try:
            events.extend(_change_events(change, where))
        except ValueError as exc:
            log.warning("whatsapp: a malformed change skipped: %s", str(exc)[:300])
    return events


def _changes(payload: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Each `calls` change with its path; a malformed entry or change is logged and skipped."""
    entries = payload.get("entry")
    if not isinstance(entries, list):
        log.warning("whatsapp: a webhook skipped: entry: expected a list")
        return
    for n, entry in enumerate(entries):
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            log.warning("whatsapp: entry[%d] skipped: expected an object with a list of changes", n)
            continue
        for m, change in enumerate(changes):
            if not isinstance(change, dict):
                log.warning("whatsapp: entry[%d].changes[%d] skipped: expected an object", n, m)
            elif change.get("field") == "calls":
                yield f"entry[{n}].changes[{m}]", change


def _change_events(change: Mapping[str, Any], where: str) -> Iterator[CallEvent]:
    value = _object(change.get("value"), f"{where}.value")
    number = _text(_object(value.get("metadata"), f"{where}.value.metadata"), "phone_number_id",
                   f"{where}.value.metadata")
    if "statuses" in value:  # a business-initiated call's progress: this dispatcher places no calls
        log.info("whatsapp: %s: call statuses for %s skipped", where, number)
    calls = value.get("calls", [])
    if not isinstance(calls, list):
        raise ValueError(f"{where}.value.calls: expected a list")
    for k, call in enumerate(calls):
        try:
            event = _event(_object(call, f"{where}.value.calls[{k}]"), number, f"{where}.value.calls[{k}]")
        except ValueError as exc:
            log.warning("whatsapp: a malformed call event skipped: %s", str(exc)[:300])
            continue
        if event is not None:
            yield event


def _event(call: Mapping[str, Any], number: str, where: str) -> CallEvent | None:
    kind = call.get("event")
    if kind not in ("connect", "terminate"):
        return None
    call_id, caller, business = _text(call, "id", where), _text(call, "from", where), _text(call, "to", where)
    timestamp = _text(call, "timestamp", where)
    if kind == "terminate":
        status, duration = call.get("status"), call.get("duration")
        return CallEvent("terminate", call_id, number, caller, business, timestamp,
                         status=status if isinstance(status, str) else None,
                         duration=duration if isinstance(duration, int) and not isinstance(duration, bool) else None)
    session = _object(call.get("session"), f"{where}.session")
    if session.get("sdp_type") != "offer":
        return None  # a business-initiated call's answer: not a call to take
    offer = session.get("sdp")
    if not isinstance(offer, str) or not 0 < len(offer) <= MAX_SDP_CHARS:
        raise ValueError(f"{where}.session.sdp: expected an SDP offer of at most {MAX_SDP_CHARS} characters")
    return CallEvent("connect", call_id, number, caller, business, timestamp, offer=offer)


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected an object")
    return value


def _text(parent: Mapping[str, Any], name: str, where: str) -> str:
    value = parent.get(name)
    # printable too: these ids reach the log and the timeline, where a control character could forge a line
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS or not value.isprintable():
        raise ValueError(f"{where}.{name}: expected a string of 1 to {MAX_ID_CHARS} printable characters")
    return value
