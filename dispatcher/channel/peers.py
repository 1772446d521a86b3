"""Replica-to-replica forwarding: reach a session's bot whose channel ended at another replica.

Each bot's control channel ends at one dispatcher replica. A signalling request that arrives at
another one is forwarded to the peers (`DISPATCHER_PEERS`: their private base URLs) at
`POST /internal/bots/{session_id}/request`, authenticated with the replicas' own credential
(derived from the deployment secret for this use alone: no bot can compute it); the peer
holding the channel answers, the others 404. A forwarded request is answered from the local
channel only, never forwarded again, so two replicas cannot bounce a request between them.
docs/reserve.md ("Several dispatcher replicas") has the why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.outbound.http_client import HttpClient, HttpError, HttpResponse
from dispatcher.settings import SettingsError

FORWARD_PATH = "/internal/bots/{session_id}/request"
FORWARD_TIMEOUT_SECONDS = 15.0  # the bot's own answer time included (an SDP answer: tens of ms)


def parse_peers(raw: str) -> tuple[str, ...]:
    peers = tuple(p.strip().rstrip("/") for p in raw.split(",") if p.strip())
    for peer in peers:
        if not peer.startswith(("http://", "https://")):
            raise SettingsError(f"DISPATCHER_PEERS: {peer!r} is not a base URL like http://10.0.1.7:8080")
    return peers


class Peers:
    def __init__(self, urls: tuple[str, ...], credential: str) -> None:
        self.urls = urls
        self.credential = credential
        self._http = HttpClient(timeout=FORWARD_TIMEOUT_SECONDS, connect_timeout=2.0) if urls else None

    @property
    def polls(self) -> bool:
        return bool(self.urls)

    async def ask(self, session_id: str, method: str, params: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The answer of the peer that holds the session's bot, or None if no peer does (yet)."""
        if self._http is None:
            return None
        answers = await asyncio.gather(
            *(self._ask_one(url, session_id, method, params) for url in self.urls), return_exceptions=True
        )
        for answer in answers:
            if isinstance(answer, ApiError):
                raise answer  # the bot answered and refused (a bad offer, a second peer…)
        for answer in answers:
            if isinstance(answer, HttpResponse) and answer.status_code == 200:
                result: Mapping[str, Any] = answer.json()["result"]
                return result
        return None

    async def _ask_one(self, url: str, session_id: str, method: str, params: Mapping[str, Any]) -> HttpResponse:
        assert self._http is not None
        try:
            response = await self._http.request(
                "POST",
                url + FORWARD_PATH.format(session_id=session_id),
                json={"method": method, "params": dict(params)},
                headers={"Authorization": f"Bearer {self.credential}"},
            )
        except HttpError:
            return HttpResponse(503, {}, b"")  # an unreachable peer holds nothing we can reach
        if 400 <= response.status_code < 500 and response.status_code != 404:
            error = _error(response)
            raise ApiError(response.status_code, error.get("code", "bot_error"), error.get("message", "refused"))
        return response

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()


def _error(response: HttpResponse) -> dict[str, str]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}
