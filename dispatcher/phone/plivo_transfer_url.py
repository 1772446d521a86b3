"""The one-time URL Plivo fetches a transferred call's XML from, and that XML.

`POST /phone/plivo/transfer/{ticket}`: the ticket names the session, the call's UUID, the target and
the `<Dial timeLimit>`, with a random nonce, under an HMAC of the replicas' shared token key, so any
replica can answer it and nobody without the key can mint one (a target off PHONE_TRANSFER_TARGETS
included). Plivo signs its fetch (X-Plivo-Signature-V3), which must name the same call; the route
spends the ticket once at every replica (dispatcher/api/routers/webhooks.py), so a captured fetch
replayed dials no one again.

The XML is built here alone, `to` escaped as text: `<Number>` an E.164 number, `<User>` a SIP URI.
No `callerId`: Plivo's `<Dial>` then presents the caller's own number to the person (its default).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from xml.sax.saxutils import escape

from dispatcher.api_error import ApiError
from dispatcher.phone.transfer_target import TransferTarget, transfer_target

PATH = "/phone/plivo/transfer/"
MAX_TICKET_CHARS = 1200


@dataclass(frozen=True)
class Ticket:
    session_id: str
    call_uuid: str
    target: TransferTarget
    time_limit: int
    mac: str  # the ticket's once-only key


def transfer_url(key: bytes, session_id: str, call_uuid: str, target: TransferTarget, time_limit: int) -> str:
    """The path (under the dispatcher's public URL) Plivo fetches the call's `<Dial>` from."""
    fields = {"s": session_id, "c": call_uuid, "t": target.to, "l": int(time_limit), "n": secrets.token_urlsafe(12)}
    body = base64.urlsafe_b64encode(json.dumps(fields, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{PATH}{body}.{_mac(key, body)}"


def read_ticket(key: bytes, ticket: str) -> Ticket:
    """The ticket's fields, or a 403 when the dispatcher did not mint it."""
    body, _, mac = ticket.partition(".")
    if len(ticket) > MAX_TICKET_CHARS or not hmac.compare_digest(_mac(key, body).encode(), mac.encode()):
        raise ApiError(403, "callback_forged", "this transfer URL was not handed out by this deployment")
    fields = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return Ticket(str(fields["s"]), str(fields["c"]), transfer_target(fields["t"], "cold"), int(fields["l"]), mac)


def dial_xml(target: TransferTarget, time_limit: int) -> str:
    """`<Response><Dial timeLimit=…><Number>+14155550123</Number></Dial></Response>` (or `<User>sip:…`)."""
    noun = "User" if target.is_sip else "Number"
    return f'<Response><Dial timeLimit="{int(time_limit)}"><{noun}>{escape(target.to)}</{noun}></Dial></Response>'


def _mac(key: bytes, body: str) -> str:
    digest = hmac.new(key, b"plivo-transfer:" + body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
