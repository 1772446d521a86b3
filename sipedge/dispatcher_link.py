"""The edge as the dispatcher's client, in the steps a carrier's call takes there: `POST /start` with
the number's API key for a call token (`transport: exotel`: stream_frames.py says why), then the
token's WebSocket, then `GET /sessions/{id}` for the bot's `joined` (its media socket is up: the
call can be answered). Every request is bounded (REQUEST_SECONDS) and retried on a connection
failure only, with backoff: a refusal is the dispatcher's answer, passed on to the trunk. A retried
`POST /start` carries the first try's Idempotency-Key, so an answer lost on the way makes no second
session. Each start presents the edge's own credential (`X-Voicefleet-Edge-Secret`, docs/sip.md#edge-credentials),
by which the dispatcher records the call as this edge's (its transfers' reports are then taken from this edge
alone); a call through a priced trunk also names its trunk and price (`sip_trunk`), which the dispatcher takes
from the edge alone."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import websockets
from websockets.asyncio.client import ClientConnection

from sipedge.refusals import SipRefusal, from_http, unavailable
from sipedge.sip_end import SipEnd

REQUEST_SECONDS = 5.0
ATTEMPTS = 3
BACKOFF_SECONDS = 0.2  # doubled after each failed attempt
POLL_SECONDS = 0.2
log = logging.getLogger("sipedge")
COUNT_REFUSED = (403, 422)  # a credential the dispatcher does not take; a dispatcher older than the count
EDGE_SECRET_HEADER = "X-Voicefleet-Edge-Secret"  # noqa: S105 - a header's name (the dispatcher's edge_secret.py HEADER)


@dataclass(frozen=True)
class CallToken:
    url: str  # {wsUrl}/{token}: where the call's stream connects (a secret until spent)
    session_id: str


class DispatcherLink:
    def __init__(self, base_url: str, edge_secret: str | None = None, edge_url: str | None = None) -> None:
        self.base_url = base_url
        self.edge_url = edge_url  # the file's `control_url`: named in each call's stream, for its transfers
        self._edge_secret = edge_secret  # the edge's credential: it names the edge and vouches for a trunk's price
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_SECONDS))

    async def close(self) -> None:
        await self._http.close()

    async def call_token(self, api_key: str | None, body: dict[str, Any], release: str | None = None,
                         line: dict[str, Any] | None = None, eval_token: str | None = None) -> CallToken | SipRefusal:
        """`line`: the call's trunk and its inbound price (config.py `TrunkPrice.line`), for its cost.
        `eval_token`: the INVITE's `X-Voicefleet-Eval` (call_data.py), which the dispatcher checks."""
        payload: dict[str, Any] = {"transport": "exotel", "body": body}
        if release is not None:
            payload["release"] = release  # pinned: unknown there is 422 `unknown_release` (refusals.py)
        if eval_token is not None:
            payload["eval_token"] = eval_token  # refused there: 403 `eval_token_refused` (refusals.py)
        headers = {**_auth(api_key), "Idempotency-Key": uuid.uuid4().hex}
        if self._edge_secret is not None:  # priced or not: the dispatcher records the call as this edge's
            headers[EDGE_SECRET_HEADER] = self._edge_secret
            if line is not None:
                payload["sip_trunk"] = {k: v for k, v in line.items() if k != "direction"}
        for attempt in range(ATTEMPTS):
            try:
                async with self._http.post(f"{self.base_url}/start", json=payload, headers=headers) as answer:
                    data = await answer.json(content_type=None) if answer.content_length != 0 else {}
                    if answer.status in (200, 201) and isinstance(data, dict) and "token" in data:
                        return CallToken(f"{data['wsUrl']}/{data['token']}", str(data["sessionId"]))
                    return from_http(answer.status, answer.headers.get("Retry-After"), _error_code(data), release)
            except (aiohttp.ClientConnectionError, TimeoutError, ValueError) as exc:
                if attempt + 1 == ATTEMPTS:
                    return unavailable(f"the dispatcher did not answer POST /start ({type(exc).__name__})")
                await asyncio.sleep(BACKOFF_SECONDS * 2**attempt)
        raise AssertionError("unreachable")

    async def open_stream(self, token: CallToken) -> ClientConnection | SipRefusal:
        try:
            # No permessage-deflate, whoever answers: base64 audio hardly deflates, and a dispatcher (or
            # anything in its place) that took the offer would have the edge deflate and inflate every frame.
            return await websockets.connect(token.url, open_timeout=REQUEST_SECONDS, proxy=None, compression=None)
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            return unavailable(f"the call's stream could not be opened ({type(exc).__name__})")

    async def stop(self, api_key: str | None, session_id: str) -> bool:
        """`DELETE /sessions/{id}`: a session whose caller left before its stream opened. True once the
        dispatcher took the stop (or the session had ended); bounded like every request."""
        return await self._taken("DELETE", f"/sessions/{session_id}", api_key, (202, 204, 404))

    async def tell_end(self, api_key: str | None, session_id: str, end: SipEnd) -> bool:
        """`POST /sessions/{id}/sip_end`: how the call's SIP side ended, for the session's timeline,
        webhook and report. True once the dispatcher took it. Its answered seconds go with the edge's
        credential, which vouches for them (the number's key is a client's too); without one, not at all.
        A dispatcher that refuses the count (403: a credential it does not take; 422: a release older than the
        count) is told the end once more without it: the call's end is never lost for its price."""
        path, told = f"/sessions/{session_id}/sip_end", end.as_json()
        counted = self._edge_secret is not None and "answered_seconds" in told
        if not counted:
            told.pop("answered_seconds", None)
            return await self._taken("POST", path, api_key, (204,), told)
        status = await self._answered("POST", path, api_key, (204,), told,
                                      {**_auth(api_key), EDGE_SECRET_HEADER: str(self._edge_secret)}, COUNT_REFUSED)
        if status not in COUNT_REFUSED:
            return status == 204
        log.warning("sipedge: the dispatcher refused session %s's answered seconds (HTTP %d): its end is told "
                    "without them, and it prices the call on its own view of it", session_id, status)
        told.pop("answered_seconds")
        return await self._taken("POST", path, api_key, (204,), told)

    async def _taken(self, method: str, path: str, api_key: str | None, taken: tuple[int, ...],
                     body: dict[str, Any] | None = None) -> bool:
        """Whether the dispatcher answered one of `taken` (`_answered`)."""
        return await self._answered(method, path, api_key, taken, body) in taken

    async def _answered(self, method: str, path: str, api_key: str | None, taken: tuple[int, ...],
                        body: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                        final: tuple[int, ...] = ()) -> int | None:
        """The status of the dispatcher's answer: one of `taken` or `final` (a refusal no second try changes);
        tried again (with backoff) while it cannot be reached or answers anything else, its last answer's
        status once the tries ran out. None when no try got an answer."""
        status: int | None = None
        for attempt in range(ATTEMPTS):
            try:
                async with self._http.request(method, f"{self.base_url}{path}", json=body,
                                              headers=headers if headers is not None else _auth(api_key)) as answer:
                    status = answer.status
                    if status in taken or status in final:
                        return status
            except (aiohttp.ClientConnectionError, TimeoutError):
                pass
            if attempt + 1 < ATTEMPTS:
                await asyncio.sleep(BACKOFF_SECONDS * 2**attempt)
        return status

    async def until_joined(self, api_key: str | None, session_id: str) -> None:
        """Returns once the session reports `joined`; raises SessionGone if it ended or failed first.
        The caller bounds the wait (the ringing's own deadline)."""
        while True:
            try:
                async with self._http.get(f"{self.base_url}/sessions/{session_id}", headers=_auth(api_key)) as answer:
                    status = (await answer.json(content_type=None)).get("status") if answer.status == 200 else None
            except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError):
                status = None  # the session may not be known yet, or an answer was lost: ask again
            if status == "joined":
                return
            if status in ("ended", "failed"):
                raise SessionGone(str(status))
            await asyncio.sleep(POLL_SECONDS)


class SessionGone(Exception):
    """The call's session ended or failed before its bot joined."""


def _error_code(data: Any) -> str:
    """The code of the dispatcher's error answer, `{"error": {"code", "message"}}` (dispatcher/errors.py)."""
    error = data.get("error") if isinstance(data, dict) else None
    return str(error.get("code", "")) if isinstance(error, dict) else ""


def _auth(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}
