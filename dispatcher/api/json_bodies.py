"""Request bodies are JSON whatever `Content-Type` a non-browser client sent.

`curl -d '{"body": {}}'` labels its JSON `application/x-www-form-urlencoded`; the API has no form
endpoint, so such a body is read as JSON (and a body that is not JSON gets 400 `invalid_json`).

Browsers are held to `application/json`: a browser request always carries `Origin` (or
`Sec-Fetch-Site`), so such a request with another content type gets 415 rather than being read as
JSON. That is not what stops another site's page: it may send no body and no `Content-Type` at
all; dispatcher/api/cross_site.py refuses its writes whatever they carry.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from dispatcher.errors import error_response

JSON = b"application/json"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == JSON or (media.startswith(b"application/") and media.endswith(b"+json"))


class JsonBodies:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers", []))
        content_type = next((v for k, v in headers if k == b"content-type"), None)
        if content_type is None or _is_json(content_type):
            await self.app(scope, receive, send)
            return
        if any(k in (b"origin", b"sec-fetch-site") for k, _ in headers):
            shown = content_type.decode("latin-1")[:80]
            response = error_response(
                415, "unsupported_media_type", f"send the body as Content-Type: application/json, not {shown}"
            )
            await response(scope, receive, send)
            return
        relabelled = [(k, v) for k, v in headers if k != b"content-type"] + [(b"content-type", JSON)]
        await self.app({**scope, "headers": relabelled}, receive, send)
