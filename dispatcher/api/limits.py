"""Request size limits, enforced before any route runs (pure ASGI: nothing is buffered unbounded)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatcher.errors import error_response


class RequestLimits:
    """413 for bodies over `max_body`, 431 for headers over `max_headers`, both as JSON.

    The server (dispatcher/serving/server.py) has its own, larger head cap as a backstop; this one answers
    in the API's error format.
    """

    def __init__(self, app: ASGIApp, *, max_body: int, max_headers: int,
                 larger: tuple[tuple[str, int], ...] = ()) -> None:
        self.app = app
        self.max_body = max_body
        self.max_headers = max_headers
        self.larger = larger  # (path prefix, its own bound): a recording's part PUT to the local folder store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        if sum(len(k) + len(v) + 4 for k, v in headers) > self.max_headers:
            await error_response(431, "headers_too_large", f"request headers exceed {self.max_headers} bytes")(
                scope, receive, send
            )
            return
        path = scope.get("path", "")
        bound = next((limit for prefix, limit in self.larger if path.startswith(prefix)), None)
        if bound is not None and scope.get("method") == "PUT":
            # Streamed to its route, which bounds it itself: a 5 MiB part is never buffered twice.
            declared = next((v for k, v in headers if k == b"content-length"), None)
            if declared is None or not declared.isdigit() or int(declared) > bound:
                await error_response(413, "payload_too_large", f"a part needs a Content-Length of at most {bound} "
                                     "bytes")(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in headers if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._too_large(scope, receive, send)
            return

        # Read the whole (bounded) body here, so a chunked upload past the limit is refused with
        # 413 before any route parses it. At most `max_body` bytes are ever held.
        chunks: list[bytes] = []
        received = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self.app(scope, replaying(b"".join(chunks), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, "payload_too_large", f"request body exceeds {self.max_body} bytes")
        await response(scope, receive, send)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A request's body, already read, as one message; then the connection's own messages (its
    disconnect, when it comes), as the server would send them."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class SecurityHeaders:
    """Headers every response carries; the API is never cached, sniffed or framed."""

    HEADERS = (
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-opener-policy", b"same-origin"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.HEADERS if k not in present]
                if b"cache-control" not in present:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
