"""How a call's SIP side ended, as the edge tells the dispatcher (`POST /sessions/{id}/sip_end`, with
the number's API key), which keeps it on the session's timeline (`sip_ended`), in its `session.ended`
webhook and its report.json (`sip`): who hung up (`caller`: the trunk's BYE or CANCEL; `edge`: its
BYE once the bot's side ended, or its refusal before the answer), how, and the SIP status and the
`Reason:` header (RFC 3326: a trunk's Q.850 cause) where there was one. An answered call's end also
says its answered seconds on the edge's own clock, from its `200 OK` to that end: the time a carrier
bills, which the dispatcher prices once the edge's credential vouches for it (its own view of the
call's end comes a hop or two after the BYE)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

MAX_REASON_CHARS = 256  # the dispatcher's bound; a longer Reason is cut, never refused
_REASON = re.compile(r"^Reason[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class SipEnd:
    by: str  # "caller" or "edge"
    # "bye", "cancel", "refused" (the edge's final answer before the answer), "failed" (PJSIP's own end, or the
    # edge's of a 200 OK no ACK confirmed: sipedge/ack_wait.py),
    # "referred" (handed to a person by REFER), "bridged" (to a person the edge called: sipedge/call_transfer.py)
    how: str
    status: int | None = None
    reason: str | None = None
    answered_seconds: float | None = None  # from the edge's 200 OK to this end; None: never answered

    def as_json(self) -> dict[str, Any]:
        fields = {name: value for name, value in asdict(self).items() if value is not None}
        if self.reason is not None:
            fields["reason"] = self.reason[:MAX_REASON_CHARS]
        return fields


BOT_SIDE_ENDED = "the bot's side ended"
EDGE_STOPPED = "the edge stopped"  # its stop hung up the calls still up (sipedge/drain.py)


def edge_hung_up(answered: bool, why: str = BOT_SIDE_ENDED) -> SipEnd:
    """The edge's own end (once the bot's side ended, or `why`): BYE to an answered caller, else 503."""
    return SipEnd("edge", "bye", reason=why) if answered else SipEnd("edge", "refused", 503, why)


def disconnected(received: str | None, confirmed: bool, status: int, reason: str) -> SipEnd:
    """A call PJSUA ended without the edge hanging up. `received`: the request that ended it, when
    PJSUA says so (the caller's BYE or CANCEL, as received); `confirmed`: it had been answered and
    ACKed; `status` and `reason`: PJSUA's last status of the call."""
    method = received.split(" ", 1)[0] if received else ""
    told = reason_header(received or "")
    if method == "BYE" or (not method and confirmed):
        return SipEnd("caller", "bye", None, told)
    if method == "CANCEL" or status == 487:
        return SipEnd("caller", "cancel", 487, told)
    return SipEnd("edge", "failed", status or None, reason or None)  # PJSIP's own end (a 200 OK never ACKed)


def reason_header(message: str) -> str | None:
    """The `Reason:` header of a SIP message as received (its first), or None."""
    head = message.split("\r\n\r\n", 1)[0]
    found = _REASON.search(head)
    return (found.group(1).strip() or None) if found else None
