"""A minimal HTTP/1.1 JSON server on asyncio streams, for the bot's three signalling routes.

Why not aiohttp.web: importing aiohttp is ~15% of the bot's start-up CPU, and with it deferred
(bot/lazy_imports.py) a WebRTC session never needs it. The bot's HTTP needs are tiny: a few
JSON requests from one client (or the dispatcher's proxy) per process lifetime.

Scope, on purpose: one request per connection (`Connection: close`), `Content-Length` bodies up
to 1 MiB, `Expect: 100-continue` honoured (curl sends it for SDP-sized bodies). Anything else gets
a JSON error `{"error": {"code", "message"}}`, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from loguru import logger

from botchannel.contract import RequestFailed
from botchannel.json_input import parse_json

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 1024 * 1024
READ_TIMEOUT_SECONDS = 10.0


class HttpError(RequestFailed):
    """An error answer; the same shape travels over the control channel (botchannel/contract.py)."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes

    def json_object(self) -> dict[str, Any]:
        try:
            value = parse_json(self.body)
        except ValueError:
            raise HttpError(400, "invalid_json", "the request body is not valid JSON") from None
        if not isinstance(value, dict):
            raise HttpError(400, "invalid_json", "the request body must be a JSON object")
        return value


@dataclass(frozen=True)
class Response:
    status: int
    body: Any  # JSON-serialisable

    @classmethod
    def error(cls, status: int, code: str, message: str) -> Response:
        return cls(status, {"error": {"code": code, "message": message}})


Handler = Callable[[Request], Awaitable[Response]]


class JsonHttpServer:
    def __init__(self, routes: Mapping[tuple[str, str], Handler]) -> None:
        self._routes = dict(routes)  # (method, path) → handler
        self._paths = {path for _, path in routes}
        self._server: asyncio.Server | None = None

    async def start(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(self._serve, sock=sock, limit=MAX_HEADER_BYTES)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                request = await asyncio.wait_for(_read_request(reader, writer), READ_TIMEOUT_SECONDS)
                response = await self._dispatch(request)
            except HttpError as exc:
                response = Response.error(exc.status, exc.code, exc.message)
            await _write(writer, response)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away or stalled: nobody to answer
        finally:
            writer.close()

    async def _dispatch(self, request: Request) -> Response:
        handler = self._routes.get((request.method, request.path))
        if handler is None:
            if request.path in self._paths:
                raise HttpError(405, "method_not_allowed", f"{request.method} is not allowed on {request.path}")
            raise HttpError(404, "not_found", f"no route for {request.path}")
        try:
            return await handler(request)
        except HttpError:
            raise
        except Exception:
            logger.exception(f"{request.method} {request.path} failed")
            return Response.error(500, "internal", "internal error")


async def _read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError(431, "headers_too_large", "request headers are too large") from None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise HttpError(400, "bad_request", "malformed request line") from None
    if not version.startswith("HTTP/1."):
        raise HttpError(505, "http_version", "only HTTP/1.x is supported")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise HttpError(400, "bad_request", "malformed header line")
            headers[name.strip().lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise HttpError(411, "length_required", "send the body with Content-Length, not chunked")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise HttpError(400, "bad_request", "invalid Content-Length") from None
    if not 0 <= length <= MAX_BODY_BYTES:
        raise HttpError(413, "too_large", f"the body must be at most {MAX_BODY_BYTES} bytes")
    if length and headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    body = await reader.readexactly(length) if length else b""
    return Request(method=method.upper(), path=target.split("?", 1)[0], headers=headers, body=body)


async def _write(writer: asyncio.StreamWriter, response: Response) -> None:
    payload = json.dumps(response.body).encode()
    head = (
        f"HTTP/1.1 {response.status} {HTTPStatus(response.status).phrase}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + payload)
    await writer.drain()
