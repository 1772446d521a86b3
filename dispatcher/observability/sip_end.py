"""A SIP call's end as the SIP edge saw it (sipedge/): who hung up and how, the SIP status and the
`Reason:` where there was one. The edge tells it (`POST /sessions/{id}/sip_end`: dispatcher/api/
routers/sip_end.py) and the session's timeline keeps it as `sip_ended`; the `session.ended`
webhook and the call's report.json carry it as `sip`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SIP_ENDED = "sip_ended"
FIELDS = ("by", "how", "status", "reason")


def counted_end(events: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The first end told with the edge's count of the call's answered time (only the edge's own credential
    sends one: dispatcher/api/routers/sip_end.py), or None."""
    return next((e for e in events if e.get("event") == SIP_ENDED and "answered_seconds" in e), None)


def sip_end_of(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The call's SIP end from its timeline, or None: not a SIP call, or its end not told (yet). The counted
    end (`counted_end`), else the first told."""
    told = counted_end(events) or next((e for e in events if e.get("event") == SIP_ENDED), None)
    return None if told is None else {name: told[name] for name in FIELDS if told.get(name) is not None}
