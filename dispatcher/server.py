"""How `python -m dispatcher` serves the app: uvicorn with every connection bounded.

- A connection must finish its request (head and body) within `HEADER_TIMEOUT_SECONDS` of
  opening, or of its previous response plus the keep-alive time: sockets that send nothing, or
  a head one byte at a time, are closed, so they cannot hold the server's descriptors.
- A bot channel frame larger than the contract's limit is refused by the WebSocket protocol as it
  arrives (close 1009), never read whole first.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

from botchannel.contract import MAX_FRAME_BYTES

# h11 refuses a request whose head is larger than this, before the app sees it. The app's own
# JSON 431 limit (8 KB) sits below it, so clients normally get the API's error format.
SERVER_MAX_HEAD_BYTES = 16 * 1024


class BoundedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on reading each request."""

    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():  # the next request on this connection: idle, then its own deadline
            self._arm(self.timeout_keep_alive + self.header_timeout)

    def _arm(self, seconds: float) -> None:
        self.loop.call_later(seconds, self._deadline_passed, self.cycle)

    def _deadline_passed(self, cycle_when_armed: Any) -> None:
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return  # closed, or upgraded to a WebSocket (the bot channel has its own pings)
        waiting_for_head = self.cycle is cycle_when_armed
        if waiting_for_head or self.cycle.more_body:
            self.transport.close()


def uvicorn_config(
    app: Any, *, keep_alive_seconds: int, header_timeout_seconds: float, log_level: str,
    graceful_shutdown_seconds: int | None = None, own_log_format: bool = True,
) -> uvicorn.Config:
    """`own_log_format=False`: uvicorn's lines go through the root handler (LOG_FORMAT=json)."""
    protocol = type("ConfiguredH11Protocol", (BoundedH11Protocol,), {"header_timeout": header_timeout_seconds})
    return uvicorn.Config(
        app,
        http=protocol,
        ws="websockets-sansio",  # the bot control channel (GET /bots/channel)
        ws_max_size=MAX_FRAME_BYTES,
        h11_max_incomplete_event_size=SERVER_MAX_HEAD_BYTES,
        timeout_keep_alive=keep_alive_seconds,
        timeout_graceful_shutdown=graceful_shutdown_seconds,
        log_level=log_level,
        log_config=LOGGING_CONFIG if own_log_format else None,
        server_header=False,
        proxy_headers=False,
    )
