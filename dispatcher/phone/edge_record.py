"""A session's SIP edge record in the store: `sip-edge:<session>`, valued `<edge url> <token>` (the hand-over's
token, or `inbound` for an inbound call's start), written first-wins by whichever replica records it first."""

from __future__ import annotations

RECORD = "sip-edge:"  # + session id: the edge its call was sent to (`FirstClaims`, the store's `home:` records)
INBOUND = "inbound"  # an inbound record's mark where a hand-over's has its token (sip_edges.py `took_inbound`)


def record_key(session_id: str) -> str:
    return RECORD + session_id


def edge_of(record: str) -> str:
    """The edge URL a `sip-edge:` record names."""
    return record.split(" ", 1)[0].lower()


def same_hand_over(recorded: str, mine: str) -> bool:
    """`recorded` is another edge's record of the hand-over `mine` is (the same token, which each edge it asks
    shares), left behind where that edge provably placed nothing and its let-go met a store that did not answer:
    it is moved to `mine`'s edge, never taken for an earlier hand-over's. An inbound record has no token."""
    mark = mine.rpartition(" ")[2]
    return recorded != mine and mark != INBOUND and recorded.endswith(f" {mark}")
