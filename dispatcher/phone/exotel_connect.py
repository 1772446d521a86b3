"""Exotel's Connect applet, asked whom to dial: the URL a flow's Connect applet GETs once the bot's
Voicebot stream has ended, and the JSON it is answered with (Exotel's "Programmable Connect", dynamic URL,
`Exotel-Version: 1.0`).

    GET /phone/exotel/connect/{secret}?CallSid=…&CallFrom=…&CallTo=…   (Exotel-Version: 1.0)
    200 {"fetch_after_attempt": false, "destination": {"numbers": ["+14155550123"]},
         "max_conversation_duration": 3600}

Exotel signs nothing it sends, so the URL itself carries the check: `secret` is an HMAC of the deployment's
Exotel credential (EXOTEL_API_KEY:EXOTEL_API_TOKEN, the Basic pair its Voicebot stream already presents), so
the token never appears in a URL or an access log, and rotating it changes the URL. Whoever lacks it gets the
plain 404 of an unknown path, which says neither that the secret was wrong nor whether this deployment takes
Exotel calls at all. Whoever has it (it sits in the flow, beside the stream's credential) learns nothing by
asking: a call is answered its number only for the CallSid a transfer was asked for, only after it was asked,
and only until the transfer's record expires (dispatcher/phone/exotel_transfers.py). A call with no transfer
asked, or one whose transfer gave up waiting for Exotel, gets an empty `numbers`, which sends the flow down
the applet's "We didn't dial anyone" branch, never to a default number.

`python -m dispatcher.phone.exotel_connect` prints the URL to put in the flow, from PHONE_PUBLIC_URL,
EXOTEL_API_KEY and EXOTEL_API_TOKEN in its environment (never on its command line).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import sys
from typing import Any

from dispatcher.phone.transfer_target import TransferTarget
from voicefleet_settings.read import setting_text

PATH = "/phone/exotel/connect/"
VERSION = "1.0"  # the `Exotel-Version` Exotel sends and validates the answer against
MAX_CONVERSATION_SECONDS = 14400  # Exotel's longest call (4 h): a longer limit is brought within it
_LABEL = b"voicefleet exotel connect v1"
# Exotel's CallSid (32 hex digits as its pages show one): bounded, URL-safe characters only.
EXOTEL_CALL_SID = re.compile(r"[0-9A-Za-z_-]{8,64}")


def connect_secret(exotel_basic: str) -> str:
    """The URL's secret path segment: 43 URL-safe characters derived from `API_KEY:API_TOKEN`."""
    digest = hmac.new(exotel_basic.encode(), _LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def secret_matches(exotel_basic: str | None, presented: str) -> bool:
    if not exotel_basic:
        return False
    return hmac.compare_digest(connect_secret(exotel_basic).encode(), presented.encode())


def dial(target: TransferTarget, time_limit: int) -> dict[str, Any]:
    """The answer that rings `target` (an E.164 number): the call lasts at most `time_limit` seconds."""
    return {"fetch_after_attempt": False, "destination": {"numbers": [target.to]},
            "max_conversation_duration": max(1, min(int(time_limit), MAX_CONVERSATION_SECONDS))}


def dial_no_one() -> dict[str, Any]:
    """The answer for a call no transfer was asked for: no number, so the flow takes its "didn't dial" branch."""
    return {"fetch_after_attempt": False, "destination": {"numbers": []}}


def main(env: dict[str, str]) -> int:
    base = setting_text(env, "PHONE_PUBLIC_URL").rstrip("/")
    key, token = setting_text(env, "EXOTEL_API_KEY"), setting_text(env, "EXOTEL_API_TOKEN")
    if not (base and key and token):
        print("set PHONE_PUBLIC_URL, EXOTEL_API_KEY and EXOTEL_API_TOKEN in the environment, as the dispatcher "
              "has them", file=sys.stderr)
        return 2
    print(f"{base}{PATH}{connect_secret(f'{key}:{token}')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(dict(os.environ)))
