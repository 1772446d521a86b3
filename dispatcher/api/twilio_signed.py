"""A form Twilio POSTed to one of the dispatcher's callback URLs, checked as Twilio signs it: `X-Twilio-Signature`
(TWILIO_AUTH_TOKEN) over the address the dispatcher gave Twilio (its own, never the request's Host), and a
`CallSid` of Twilio's shape. The placed calls' callbacks (routers/twilio_dial.py) and a warm transfer's
(routers/twilio_warm.py) each check their URL's MAC and a replay on top."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from fastapi import Request

from dispatcher.api.call_place import placed_base
from dispatcher.api.state import AppState
from dispatcher.errors import ApiError
from dispatcher.phone.signatures import twilio_valid

CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")


async def signed_form(request: Request, state: AppState, auth_token: str) -> tuple[dict[str, str], str | None]:
    """The form and its signature; 400 or 403 when it is not Twilio's."""
    try:
        params = parse_qsl((await request.body()).decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_form", "the callback's body is not UTF-8 form data") from None
    url = placed_base(state, "twilio") + request.url.path  # the address the create gave Twilio, which it signed
    url += f"?{request.url.query}" if request.url.query else ""
    signature = request.headers.get("x-twilio-signature")
    if not twilio_valid(auth_token, url, params, signature):
        raise ApiError(403, "signature_invalid", "X-Twilio-Signature does not match this request")
    form = dict(params)
    if not CALL_SID.fullmatch(form.get("CallSid", "")):
        raise ApiError(400, "invalid_form", "CallSid is not a Twilio call SID (CA and 32 hex digits)")
    return form, signature
