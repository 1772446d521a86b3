"""What the bot is told about its call (`runner_args.body`): the INVITE's From, To and Call-ID and
its `X-` headers, as a carrier's custom parameters reach it. The headers are read with the standard
library's RFC 5322 parser (SIP's header syntax is that of mail). All of it is the caller's text, cut
to BODY_BYTES as the dispatcher measures it (JSON), so the dispatcher never refuses the session. One
header is the edge's, not the bot's: `X-Voicefleet-Eval`, an eval's token, which the edge forwards in
its start (the dispatcher checks it: it is the caller's text too) and never shows the bot."""

from __future__ import annotations

import json
from email.parser import HeaderParser
from typing import Any

MAX_HEADER_VALUE = 256  # the call's body rides in a token of at most 2 KB (docs/phone.md)
MAX_HEADERS = 8
MAX_URI = 256  # From, To and Call-ID each: a caller's own text
BODY_BYTES = 2000  # under the dispatcher's 2048 bytes of a call's body (dispatcher/phone/tokens.py)
EVAL_HEADER = "X-Voicefleet-Eval"  # the dispatcher's dispatcher/phone/eval_tokens.py HEADER
MAX_EVAL_TOKEN = 1024  # the dispatcher's bound on a start's `eval_token`


def _headers(message: str) -> list[tuple[str, str]]:
    head = message.split("\r\n\r\n", 1)[0].split("\r\n", 1)[-1]
    return [(name, str(value).strip()) for name, value in HeaderParser().parsestr(head, headersonly=True).items()]


def eval_token(message: str) -> str | None:
    """The INVITE's `X-Voicefleet-Eval`, if any; an over-long one is cut, so its signature fails as forged."""
    return next((value[:MAX_EVAL_TOKEN] for name, value in _headers(message) if name.lower() == EVAL_HEADER.lower()),
                None)


def custom_headers(message: str) -> dict[str, str]:
    """The request's `X-` headers (name as sent, value trimmed) but the eval token, at most MAX_HEADERS."""
    found: dict[str, str] = {}
    for name, value in _headers(message):
        if name.lower().startswith("x-") and name.lower() != EVAL_HEADER.lower() and len(found) < MAX_HEADERS:
            found[name] = value[:MAX_HEADER_VALUE]
    return found


def body_bytes(body: dict[str, Any]) -> int:
    """The body's size as the dispatcher measures it."""
    return len(json.dumps(body, separators=(",", ":")).encode())


def call_body(from_uri: str, to_uri: str, call_id: str, message: str) -> dict[str, Any]:
    """The headers that fit BODY_BYTES, in the order sent; the rest are left out."""
    headers: dict[str, str] = {}
    body = {"from": from_uri[:MAX_URI], "to": to_uri[:MAX_URI], "call_id": call_id[:MAX_URI], "headers": headers}
    for name, value in custom_headers(message).items():
        headers[name] = value
        if body_bytes(body) > BODY_BYTES:
            del headers[name]
    return body
