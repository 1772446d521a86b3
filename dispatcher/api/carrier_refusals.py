"""A refused media-stream upgrade, said: an HTTP answer with the JSON error shape, and the way in.

A carrier shows none of it (it only sees the call fail), but whoever tries the URL by hand — a
WebSocket client, `websockets`' `InvalidStatus`, a browser's network tab — reads the body, and the
dispatcher's log has the same sentence. The two refusals a team moving from Pipecat Cloud meets
first name the way forward: a carrier path this dispatcher does not serve (`/ws/vonage`), and
Pipecat Cloud's stream URL with only the host changed (`?serviceHost=…&body=…`, no token), which
a dispatcher with API keys cannot take.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from fastapi import WebSocket
from starlette.responses import Response

from dispatcher.phone.settings import CARRIERS

WEBHOOK_CARRIERS = ("twilio", "telnyx", "plivo")  # POST /phone/{carrier} answers with a tokened stream URL
GENERIC_WAY = ('for Vonage or any other WebSocket client, POST /start {"transport": "websocket"} and connect '
               "to the answer's `{wsUrl}/{token}` (/ws/generic/voicefleet/{token})")


def unknown_carrier(carrier: str) -> str:
    shown = carrier[:40]
    return (f"no carrier {shown!r} here: streams are taken at /ws/{{{'|'.join(CARRIERS)}}}/{{token}}; "
            f"{GENERIC_WAY} (docs/phone.md)")


def refused(carrier: str, reason: str, query: Mapping[str, str]) -> str:
    """The sentence for a refused upgrade: its reason, and how a stream gets in when it lacked proof."""
    if reason not in ("no_proof", "query_body_needs_a_token"):
        return f"the {carrier} stream was refused ({reason})"
    pipecat_cloud = "serviceHost" in query or "body" in query
    what = ("Pipecat Cloud's stream URL with only the host changed is taken by a keyless local dispatcher only"
            if pipecat_cloud else "a stream needs proof of where it comes from")
    ways = [f'your server calls POST /start {{"transport": "{"websocket" if carrier == "generic" else carrier}", '
            '"body": …} with an API key and puts the answer\'s `{wsUrl}/{token}` in the stream URL']
    if carrier in WEBHOOK_CARRIERS:
        ways.insert(0, f"point the number's webhook at POST /phone/{carrier} (it answers with a stream URL "
                       "that carries a one-time token)")
    if carrier == "exotel":
        ways.insert(0, "put the Exotel API key and token in the applet's URL (wss://KEY:TOKEN@…/ws/exotel)")
    return f"the {carrier} stream was refused ({reason}): {what}; {', or '.join(ways)} (docs/phone.md)"


async def deny(websocket: WebSocket, status: int, code: str, message: str) -> None:
    """Answers the upgrade with `status` and the error body; a server without ASGI's denial
    response extension gets the plain close (HTTP 403, no body)."""
    if "websocket.http.response" not in websocket.scope.get("extensions", {}):
        await websocket.close(code=1008)
        return
    body = json.dumps({"error": {"code": code, "message": message}, "detail": message}).encode()
    await websocket.send_denial_response(Response(body, status_code=status, media_type="application/json"))
