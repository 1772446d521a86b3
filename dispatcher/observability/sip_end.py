"""A SIP call's end as the SIP edge saw it (sipedge/): who hung up and how, the SIP status and the
`Reason:` where there was one. The edge tells it (`POST /sessions/{id}/sip_end`: dispatcher/api/
routers/sip_end.py) and the session's timeline keeps it as `sip_ended`; the `session.ended`
webhook and the call's report.json carry it as `sip`."""

from __future__ import annotations

from typing import Any

SIP_ENDED = "sip_ended"
FIELDS = ("by", "how", "status", "reason")


def sip_end_of(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The call's SIP end from its timeline, or None: not a SIP call, or its end not told (yet). The first
    told with the edge's count of its answered time (only the edge's own credential sends one:
    dispatcher/api/routers/sip_end.py), else the first told."""
    ends = [e for e in events if e.get("event") == SIP_ENDED]
    told = next((e for e in ends if "answered_seconds" in e), ends[0] if ends else None)
    return None if told is None else {name: told[name] for name in FIELDS if told.get(name) is not None}
