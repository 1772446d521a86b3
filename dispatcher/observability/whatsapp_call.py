"""A WhatsApp call on its session's timeline, as dispatcher/whatsapp/calls.py writes it: `whatsapp_call`
(the call's record: Meta's call id, the caller's wa_id, the number called), then each of Meta's webhook
events for it (`whatsapp_event`) and each of the dispatcher's answers to Meta (`whatsapp_answer`:
accepted, rejected, terminated, or why not). `GET /sessions` lists the record as the session's
`whatsapp`; the session's report.json and its `session.ended` webhook carry `whatsapp_of` (the record
with its events, and `simulated`: an eval's call, which no WhatsApp user placed), as a SIP call's carry `sip`."""

from __future__ import annotations

from typing import Any

CALL = "whatsapp_call"
EVENT = "whatsapp_event"
ANSWER = "whatsapp_answer"
RECORD_FIELDS = ("call_id", "from", "to", "phone_number_id")


def whatsapp_of(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The call's record, its webhook events and the dispatcher's answers, in order; None: not a WhatsApp call."""
    record = next((e for e in events if e.get("event") == CALL), None)
    if record is None:
        return None
    return {**{name: record.get(name) for name in RECORD_FIELDS},
            "simulated": record.get("simulated") is True,  # an eval's call (whatsapp/eval_calls.py), no caller's
            "webhooks": [_shown(e) for e in events if e.get("event") == EVENT],
            "answers": [_shown(e) for e in events if e.get("event") == ANSWER]}


def _shown(event: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in event.items() if name not in ("event", "replica")}
