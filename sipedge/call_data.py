"""What the bot is told about its call (`runner_args.body`): the INVITE's From, To and Call-ID and
its `X-` headers, as a carrier's custom parameters reach it. The headers are read with the standard
library's RFC 5322 parser (SIP's header syntax is that of mail)."""

from __future__ import annotations

from email.parser import HeaderParser
from typing import Any

MAX_HEADER_VALUE = 256  # the call's body rides in a token of at most 2 KB (docs/phone.md)
MAX_HEADERS = 8


def custom_headers(message: str) -> dict[str, str]:
    """The request's `X-` headers (name as sent, value trimmed), at most MAX_HEADERS of them."""
    head = message.split("\r\n\r\n", 1)[0].split("\r\n", 1)[-1]
    parsed = HeaderParser().parsestr(head, headersonly=True)
    found: dict[str, str] = {}
    for name, value in parsed.items():
        if name.lower().startswith("x-") and len(found) < MAX_HEADERS:
            found[name] = str(value).strip()[:MAX_HEADER_VALUE]
    return found


def call_body(from_uri: str, to_uri: str, call_id: str, message: str) -> dict[str, Any]:
    return {"from": from_uri, "to": to_uri, "call_id": call_id, "headers": custom_headers(message)}
