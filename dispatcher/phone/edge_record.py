"""A session's SIP edge record in the store: `sip-edge:<session>`, valued `<edge url> <token>` (the hand-over's
token, or `inbound` for an inbound call's start), written first-wins by whichever replica records it first."""

from __future__ import annotations

RECORD = "sip-edge:"  # + session id: the edge its call was sent to (`FirstClaims`, the store's `home:` records)


def record_key(session_id: str) -> str:
    return RECORD + session_id


def edge_of(record: str) -> str:
    """The edge URL a `sip-edge:` record names."""
    return record.split(" ", 1)[0].lower()
