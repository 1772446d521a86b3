"""Proxy Pipecat SmallWebRTC signalling (`/api/offer`) to a local session's bot.

The bots listen on loopback only; the browser and remote clients reach them through the
dispatcher, which authenticates the call and routes it by session id.
"""

from __future__ import annotations

from typing import Any

import httpx

from dispatcher.errors import ApiError

# aiortc answers in tens of milliseconds; the margin covers ICE gathering on a busy host.
SIGNALLING_TIMEOUT = httpx.Timeout(15.0, connect=2.0)


class SignallingProxy:
    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._client = httpx.AsyncClient(timeout=SIGNALLING_TIMEOUT, transport=transport)

    async def forward(self, method: str, base_url: str, payload: dict[str, Any]) -> tuple[int, Any]:
        try:
            response = await self._client.request(method, f"{base_url}/api/offer", json=payload)
        except httpx.HTTPError as exc:
            raise ApiError(
                502, "bot_unreachable", f"the session's bot did not answer the offer ({type(exc).__name__})"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 500 or (response.status_code >= 400 and not isinstance(body, dict)):
            raise ApiError(502, "bot_error", f"the session's bot rejected the offer ({response.status_code})")
        return response.status_code, body

    async def aclose(self) -> None:
        await self._client.aclose()
