"""The dispatcher's HTTP client for provider and bot calls: a thin layer over an aiohttp pool.

Why aiohttp (bench/http_clients.py, 1000 POSTs at concurrency 200, 50 ms per call, 3 rounds):
aiohttp costs 0.28 ms of CPU a request against httpx's 7.1 ms (9.0 ms with its pool raised to
1000), because httpcore re-scans every pooled connection for every queued request; a raw asyncio
client, the floor, costs 0.08 ms. Under a burst that CPU is the dispatcher's throughput.

The surface is the little the providers use: `request()` returns an `HttpResponse` (status,
headers, body read in full, `.json()`, `.text`); `lines()` streams an answer line by line (a
Kubernetes watch); every failure to get an answer (refused, reset, timed out) is an `HttpError`,
so `dispatcher.outbound.retry` can retry it. Every call has a timeout: the client's, or the one the
caller passes.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

import dispatcher.observability.tracing as tracing
from dispatcher.outbound import http_failure

if TYPE_CHECKING:  # imported where a client is built: a dispatcher that builds none never loads it (its start)
    import aiohttp

# Connections per client (per provider): bounded, so a burst cannot open sockets without limit;
# 100 in flight at 50 ms is 2000 calls/s, above any provider's documented rate.
DEFAULT_CONNECTIONS = 100


class HttpError(Exception):
    """No HTTP answer: connection refused or reset, or the timeout passed. Its message is the cause
    (`connection refused (ClientConnectorError)`), `target` the URL it was sent to, shown safely
    (dispatcher/outbound/http_failure.py); `sent`: a request of the call went out, whatever its last
    error (http_failure.never_connected)."""

    def __init__(self, message: str, target: str = "", *, sent: bool = False) -> None:
        super().__init__(message)
        self.target = target
        self.sent = sent


class _Sending:
    """One call's note of whether any of its requests went out: aiohttp sends a PUT or DELETE again on a
    new connection after a reused one dropped it, and follows redirects, so a call that ends failing to
    connect may have delivered an earlier request."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


def _sending_trace() -> aiohttp.TraceConfig:
    import aiohttp

    async def sent(_session: object, context: Any, _params: object) -> None:
        context.trace_request_ctx.sent = True

    config = aiohttp.TraceConfig()
    config.on_request_headers_sent.append(sent)
    return config


def _failed(exc: BaseException, target: str, sending: _Sending) -> HttpError:
    return HttpError(http_failure.cause(exc), http_failure.shown_target(target), sent=sending.sent)


@dataclass(frozen=True)
class HttpResponse:
    status_code: int
    headers: Mapping[str, str] = field(repr=False)  # case-insensitive
    content: bytes = field(repr=False)

    def json(self) -> Any:
        """The body as JSON; `ValueError` if it is not."""
        return orjson.loads(self.content)  # its error is a ValueError

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class HttpClient:
    """One connection pool. `base_url` is prefixed to paths that start with `/`.

    The aiohttp session is made on first use, inside the running event loop, so a client can be
    built before the loop (the app is created before uvicorn starts it). aiohttp itself is imported
    here, where the client is built (before the loop, as wiring builds providers): imported by the
    first call, its ~0.14 s would stall every request in flight on the loop.
    """

    def __init__(
        self,
        base_url: str = "",
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float,
        connect_timeout: float | None = None,
        connections: int = DEFAULT_CONNECTIONS,
        follow_redirects: bool = True,
        max_answer_bytes: int | None = None,
        path_traced: bool = True,
        ca_file: str | None = None,
    ) -> None:
        import aiohttp  # noqa: F401 - loaded off the event loop (above); the methods below find it loaded

        self._base_url = base_url.rstrip("/")
        # False: a 3xx is the answer (its status returned), never a request sent on to its Location.
        self._follow_redirects = follow_redirects
        # Set: an answer is read as sent (no decompression) and refused past this many bytes, so a
        # peer that answers a bomb costs this much memory at most.
        self._max_answer_bytes = max_answer_bytes
        self._path_traced = path_traced  # False: spans name the host only (a URL whose path is a secret)
        self._headers = dict(headers or {})
        self._total, self._connect_timeout = timeout, connect_timeout
        self._connections = connections
        # A private CA (a test's self-signed fake, Azure Stack Hub's ARM) instead of the system's.
        self._ssl: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._proxy = proxy_for(self._base_url) if self._base_url else None
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self._total, sock_connect=self._connect_timeout),
                connector=aiohttp.TCPConnector(limit=self._connections, ssl=self._ssl),
                # Not `trust_env`: it reads the proxy variables and ~/.netrc in a thread on
                # every request (a fifth of the CPU under a burst); the proxy is resolved once.
                trust_env=False,
                raise_for_status=False,
                auto_decompress=self._max_answer_bytes is None,
                trace_configs=[_sending_trace()],
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        import aiohttp

        target = self._base_url + url if url.startswith("/") else url
        if json is not None:  # encoded here: orjson costs a fifth of what aiohttp's json.dumps does
            content, headers = orjson.dumps(json), {**(headers or {}), "Content-Type": "application/json"}
        # A call's own `timeout` replaces the whole one; the client's connect bound stays.
        per_call = (aiohttp.ClientTimeout(total=timeout, sock_connect=self._connect_timeout)
                    if timeout is not None else None)
        sending = _Sending()
        with tracing.http_call(method, target, path_shown=self._path_traced) as span:
            try:
                session = self._client()
                async with session.request(
                    method,
                    target,
                    params=params,
                    data=content,  # bytes sent as they are (a signed body must not be re-encoded)
                    headers=headers,
                    timeout=per_call or session.timeout,
                    proxy=self._proxy,
                    allow_redirects=self._follow_redirects,
                    trace_request_ctx=sending,
                ) as response:
                    if self._max_answer_bytes is None:
                        content = await response.read()
                    else:
                        content = await _bounded(response, self._max_answer_bytes)
                    tracing.answered(span, response.status)
                    return HttpResponse(response.status, response.headers, content)
            except (TimeoutError, aiohttp.ClientError) as exc:
                tracing.failed(span, type(exc).__name__)
                raise _failed(exc, target, sending) from exc

    @asynccontextmanager
    async def lines(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float,
        max_line_bytes: int = 4 * 1024 * 1024,
    ) -> AsyncIterator[StreamedAnswer]:
        """An answer read as it arrives, one line at a time (`StreamedAnswer.lines`), within `timeout`
        for the whole stream (its connection within the client's connect bound, as `request`'s); a line
        past `max_line_bytes`, a reset or the timeout is an `HttpError`."""
        import aiohttp

        target = self._base_url + url if url.startswith("/") else url
        sending = _Sending()
        with tracing.http_call(method, target, path_shown=self._path_traced) as span:
            try:
                async with self._client().request(
                    method, target, params=params, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=self._connect_timeout),
                    proxy=self._proxy, allow_redirects=self._follow_redirects, trace_request_ctx=sending,
                ) as response:
                    tracing.answered(span, response.status)
                    yield StreamedAnswer(response, max_line_bytes)
            except (TimeoutError, aiohttp.ClientError) as exc:
                tracing.failed(span, type(exc).__name__)
                raise _failed(exc, target, sending) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class StreamedAnswer:
    """An answer being read: its status and headers now, its body as lines while they arrive."""

    def __init__(self, response: aiohttp.ClientResponse, max_line_bytes: int) -> None:
        self._response, self._most = response, max_line_bytes
        self.status_code: int = response.status
        self.headers: Mapping[str, str] = response.headers

    async def lines(self) -> AsyncIterator[bytes]:
        """Each non-empty line, without its newline; a last line with no newline too."""
        pending = b""
        async for chunk in self._response.content.iter_any():
            pending += chunk
            *complete, pending = pending.split(b"\n")
            if len(pending) > self._most:
                raise HttpError(f"a line over {self._most} bytes")
            for line in complete:
                if line.strip():
                    yield line
        if pending.strip():
            yield pending

    async def body(self, most: int = 1024 * 1024) -> HttpResponse:
        """The whole answer (a refusal's `Status`), bounded."""
        return HttpResponse(self.status_code, self.headers, await _bounded(self._response, most))


async def _bounded(response: aiohttp.ClientResponse, most: int) -> bytes:
    """The whole answer, or `HttpError` once it passes `most` bytes (read no further)."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.content.iter_any():
        total += len(chunk)
        if total > most:
            raise HttpError(f"an answer over {most} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def proxy_for(url: str) -> str | None:
    """The proxy `HTTP(S)_PROXY` names for `url`, unless `NO_PROXY` exempts its host (as httpx
    and curl read them)."""
    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy is None or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy
