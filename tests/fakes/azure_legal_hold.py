"""Legal holds in front of azurite, which has none (Set Blob Legal Hold answers 501): a TLS proxy that
is a container with version-level immutability, as Azure documents it, and forwards everything else
to azurite untouched (signatures, SAS and all).

- `PUT <blob>?comp=legalhold` with `x-ms-legal-hold: true|false` (anything else: 400
  InvalidHeaderValue) sets or clears the blob's hold, after azurite has authorized the caller on the
  blob (a HEAD with the caller's own headers: 403 and 404 are azurite's answer);
- Get Blob and Get Blob Properties carry `x-ms-legal-hold`;
- a held blob cannot be deleted or written (409 BlobImmutableDueToLegalHold).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from aiohttp import web

from tests.fakes.azurite import Azurite
from tests.support.ports import free_port

PASSED_HEADERS = ("authorization", "x-ms-version", "x-ms-date")


def _error(status: int, code: str, message: str) -> web.Response:
    body = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return web.Response(status=status, body=body.encode(), content_type="application/xml",
                        headers={"x-ms-error-code": code})


class LegalHolds:
    def __init__(self, upstream: Azurite) -> None:
        self.upstream = upstream
        self.held: set[str] = set()  # the blobs' paths (/account/container/blob)
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path, comp = request.path, request.query.get("comp", "")
        is_blob = path.count("/") >= 3
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.upstream.tls())) as session:
            if is_blob and request.method == "PUT" and comp == "legalhold":
                return await self._set(request, session)
            if is_blob and path in self.held and (request.method == "DELETE"
                                                  or (request.method == "PUT" and comp in ("", "blocklist"))):
                return _error(409, "BlobImmutableDueToLegalHold", "This operation is not permitted as the blob is "
                              "immutable due to one or more legal holds.")
            body = await request.read()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            async with session.request(request.method, self._upstream(request), headers=headers, data=body,
                                       allow_redirects=False) as answer:
                content = await answer.read()
                out = {k: v for k, v in answer.headers.items()
                       if k.lower() not in ("content-length", "transfer-encoding", "connection", "keep-alive")}
                if is_blob and request.method in ("GET", "HEAD") and comp == "" and answer.status < 300:
                    out["x-ms-legal-hold"] = "true" if path in self.held else "false"
                return web.Response(status=answer.status, body=content if request.method != "HEAD" else None,
                                    headers=out)

    async def _set(self, request: web.Request, session: aiohttp.ClientSession) -> web.Response:
        value = request.headers.get("x-ms-legal-hold", "")
        if value not in ("true", "false"):
            return _error(400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct "
                          "format.")
        headers = {k: v for k, v in request.headers.items() if k.lower() in PASSED_HEADERS}
        async with session.head(self.upstream.url.rsplit("/", 1)[0] + request.path, headers=headers) as answer:
            if answer.status >= 300:
                code = answer.headers.get("x-ms-error-code", "AuthorizationFailure")
                return _error(answer.status, code, "refused by the store")
        (self.held.add if value == "true" else self.held.discard)(request.path)
        return web.Response(status=200, headers={"x-ms-legal-hold": value})

    def _upstream(self, request: web.Request) -> str:
        return self.upstream.url.rsplit("/", 1)[0] + request.raw_path


@contextmanager
def legal_holds(upstream: Azurite) -> Iterator[LegalHolds]:
    """The proxy on a free loopback port over TLS with azurite's own certificate (one file to trust),
    served by a loop of its own in a thread (the test's loop calls it)."""
    holds = LegalHolds(upstream)
    port = free_port()
    loop = asyncio.new_event_loop()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", holds.handle)
    runner = web.AppRunner(app, access_log=None)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(upstream.cert_path, upstream.key_path)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls).start()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    holds.url = f"https://127.0.0.1:{port}/{upstream.url.rsplit('/', 1)[1]}"
    try:
        yield holds
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
