"""A request's JSON that UTF-8 cannot hold, refused where it comes in.

JSON lets a client send a lone surrogate (`"\\ud800"`, half of a UTF-16 pair): Python reads it into a
str that UTF-8 cannot encode, and a start's body is encoded as UTF-8 on its way (its fingerprint in
dispatcher/sessions/ids.py, a bot's environment, the store), where it was a 500 with a traceback."""

from __future__ import annotations

import json

from dispatcher.errors import ApiError


def utf8_only(value: object, what: str) -> None:
    """400 `invalid_json` when `value` (JSON as read) holds a string UTF-8 cannot encode."""
    try:
        json.dumps(value, ensure_ascii=False, default=str).encode()
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_json", f"{what} holds a lone surrogate (a \\ud800-\\udfff escape without its "
                       "pair), which UTF-8 cannot encode: send each character whole (the character itself, or "
                       "both escapes of its pair)") from None
