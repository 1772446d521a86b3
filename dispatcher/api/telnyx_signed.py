"""A form Telnyx POSTed to one of the dispatcher's TeXML callback URLs, checked as Telnyx signs it: Ed25519 over
`{telnyx-timestamp}|{body}` (TELNYX_PUBLIC_KEY; older than its tolerance: refused), and an `AccountSid/CallSid`
of Telnyx's shape whose account is this dispatcher's (TELNYX_ACCOUNT_SID). The signature covers the body, not
the URL: the placed calls' callbacks (routers/telnyx_dial.py) and a warm transfer's (routers/telnyx_warm.py)
each check their URL's MAC and a replay on top."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

from dispatcher.errors import ApiError
from dispatcher.phone.signatures import TelnyxKey
from dispatcher.phone.telnyx_calls import call_id


async def telnyx_signed_form(request: Request, key: TelnyxKey,
                             account: str | None) -> tuple[dict[str, str], str, str | None]:
    """The form, the call it names (`AccountSid/CallSid`) and its signature; 400 or 403 when it is not Telnyx's,
    400 when it names another account than `account` (None: TELNYX_ACCOUNT_SID unset, any account)."""
    raw = await request.body()
    signature = request.headers.get("telnyx-signature-ed25519")
    why = key.valid(raw, signature, request.headers.get("telnyx-timestamp"))
    if why is not None:
        raise ApiError(403, f"signature_{why}", "the Telnyx signature is missing, forged or expired")
    try:
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_form", "the callback's body is not UTF-8 form data") from None
    call = call_id(form.get("AccountSid", ""), form.get("CallSid", ""))
    if call is None:
        raise ApiError(400, "invalid_form", "AccountSid or CallSid is not of a Telnyx call")
    if account is not None and form["AccountSid"] != account:
        raise ApiError(400, "invalid_form", "AccountSid is not this dispatcher's Telnyx account")
    return form, call, signature
