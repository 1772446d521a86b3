"""The one-time URL Plivo fetches a transferred call's XML from, and that XML.

`POST /phone/plivo/transfer/{ticket}`: the ticket names the session, the call's UUID, the target and
the `<Dial timeLimit>`, with a random nonce, under an HMAC of the replicas' shared token key, so any
replica can answer it and nobody without the key can mint one (a target off PHONE_TRANSFER_TARGETS
included). Plivo signs its fetch (X-Plivo-Signature-V3), which must name the same call, and the
ticket expires `TICKET_SECONDS` after it was minted. A captured fetch replayed only returns the XML
to the replayer: Plivo dials what it fetched itself.

Its once-only record (`claim_key`) settles one race: Plivo's fetch against the dispatcher giving the
transfer up (the read-back after a transfer nobody answered, or any other failure of it:
dispatcher/phone/transfers.py). Whoever records it first decides: the fetch (the call goes to the
person; a repeat fetch of the same call gets the same `<Dial>`), or the give-up, which marks the ticket
dead (`dead_key`) so a late fetch rings no one: it puts the call back to a bot while its session lasts,
and hangs it up (`hang_up_xml`) once the session is over (dispatcher/api/plivo_late_fetch.py).

The XML is built here alone, `to` escaped as text: `<Number>` an E.164 number, `<User>` a SIP URI.
No `callerId`: Plivo's `<Dial>` then presents the caller's own number to the person (its default).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from xml.sax.saxutils import escape

from dispatcher.api_error import ApiError
from dispatcher.phone.transfer_target import TransferTarget, transfer_target

PATH = "/phone/plivo/transfer/"
MAX_TICKET_CHARS = 1200
# Plivo fetches the URL as it answers the transfer: a ticket is good for a minute (the whole transfer
# request fits in 25 s), so one that was never fetched dials no one later.
TICKET_SECONDS = 60


@dataclass(frozen=True)
class Ticket:
    session_id: str
    call_uuid: str
    target: TransferTarget | None
    time_limit: int
    mac: str  # the ticket's once-only key
    expires: float  # epoch seconds
    document: str | None = None  # the XML to run instead of a `<Dial>` (a warm transfer's conference)
    transfer: str | None = None  # the warm transfer whose room the document joins (its person may have left it)

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires

    def xml(self) -> str:
        """What the call runs: the ticket's document, else the `<Dial>` of its target."""
        if self.document is not None:
            return self.document
        assert self.target is not None
        return dial_xml(self.target, self.time_limit)


def transfer_url(key: bytes, session_id: str, call_uuid: str, target: TransferTarget | None, time_limit: int,
                 document: str | None = None, transfer: str | None = None) -> str:
    """The path (under the dispatcher's public URL) Plivo fetches the call's `<Dial>` from (for `target`), or
    `document`: a warm transfer's conference (plivo_warm.py), carried under the MAC as the target is, with
    `transfer`, the warm transfer whose room it is."""
    fields = {"s": session_id, "c": call_uuid, "t": target.to if target else None, "l": int(time_limit),
              "n": secrets.token_urlsafe(12), "e": int(time.time()) + TICKET_SECONDS, "x": document, "w": transfer}
    body = base64.urlsafe_b64encode(json.dumps(fields, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{PATH}{body}.{_mac(key, body)}"


def read_ticket(key: bytes, ticket: str) -> Ticket:
    """The ticket's fields, or a 403 when the dispatcher did not mint it."""
    body, _, mac = ticket.partition(".")
    if len(ticket) > MAX_TICKET_CHARS or not hmac.compare_digest(_mac(key, body).encode(), mac.encode()):
        raise ApiError(403, "callback_forged", "this transfer URL was not handed out by this deployment")
    fields = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    target = transfer_target(fields["t"], "cold") if fields.get("t") else None
    document, transfer = fields.get("x"), fields.get("w")
    return Ticket(str(fields["s"]), str(fields["c"]), target, int(fields["l"]), mac,
                  float(fields.get("e", 0)),  # a ticket minted before expiries: expired
                  document if isinstance(document, str) else None, transfer if isinstance(transfer, str) else None)


def ticket_mac(path: str) -> str:
    """The once-only key of the ticket in a path `transfer_url` made."""
    return path.rsplit(".", 1)[1]


def claim_key(mac: str) -> str:
    """The record whose first writer decides the ticket: Plivo's fetch, or the read-back that kills it."""
    return "plivo-transfer:" + hashlib.sha256(mac.encode()).hexdigest()


def dead_key(mac: str) -> str:
    """Written by the read-back that won `claim_key`: the ticket dials no one."""
    return "plivo-transfer-dead:" + hashlib.sha256(mac.encode()).hexdigest()


def dial_xml(target: TransferTarget, time_limit: int) -> str:
    """`<Response><Dial timeLimit=…><Number>+14155550123</Number></Dial></Response>` (or `<User>sip:…`)."""
    noun = "User" if target.is_sip else "Number"
    return f'<Response><Dial timeLimit="{int(time_limit)}"><{noun}>{escape(target.to)}</{noun}></Dial></Response>'


def hang_up_xml() -> str:
    """A dead ticket's answer once its session is over: the call ends, nobody is rung, no session starts."""
    return "<Response><Hangup/></Response>"


def _mac(key: bytes, body: str) -> str:
    digest = hmac.new(key, b"plivo-transfer:" + body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
