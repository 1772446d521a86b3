"""A request for a session another region holds, sent on to that region as it came, and its answer
streamed back (an event stream included).

Only what the holding region needs crosses: the method, the path and query, the body, the
caller's own credentials and the few headers the API reads, signed as every region request is
(the holding region takes it as relayed only then). The answer comes back as the holding region
gave it. A peer that stops answering before its answer's head, or that this region's
polling finds unreachable meanwhile, is `RegionUnreachable`: the caller gets a 503 in about the
poll's time, never a hang. docs/regions.md ("A session in another region").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from yarl import URL

from dispatcher.regions.config import Regions
from dispatcher.regions.signing import RELAYED_BY, RegionSigner, signed_path

if TYPE_CHECKING:  # imported by the first relay: a single region never loads it (the start's CPU)
    import aiohttp

# The request headers the API reads; the rest (Host, Cookie, hop-by-hop) stay here. What only a
# region may say (that a start spilled) is never a caller's header passed on: `forward`'s `marks`.
FORWARDED_REQUEST = ("authorization", "content-type", "accept", "idempotency-key", "traceparent", "tracestate",
                     "last-event-id")
# The answer's headers a client reads; the rest are the holding region's transport's.
FORWARDED_ANSWER = ("content-type", "cache-control", "retry-after", "location", "x-accel-buffering")
CONNECT_SECONDS = 1.0
CHECK_SECONDS = 0.2  # how often a relay waiting for its answer's head asks whether its region still answers


class RegionUnreachable(Exception):
    """The holding region did not answer; the message says how."""


@dataclass
class RelayedAnswer:
    status: int
    headers: dict[str, str]
    body: AsyncIterator[bytes]
    close: Callable[[], None]


class RegionRelay:
    def __init__(self, regions: Regions, connections: int = 1200) -> None:
        self._here = regions.here
        self._signer = RegionSigner(regions)
        self._connections = connections  # above the waits a replica holds (SESSION_WAITS), which relays take too
        self._session: aiohttp.ClientSession | None = None
        if regions.peers:  # imported here, before the loop runs: at the first relay it would stall every request
            import aiohttp  # noqa: F401

    def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            # `connect` bounds waiting for a free connection as well as opening one: a full pool is
            # a 503 at once, never a request left waiting.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_SECONDS, sock_connect=CONNECT_SECONDS),
                trust_env=False, auto_decompress=False, connector=aiohttp.TCPConnector(limit=self._connections))
        return self._session

    async def forward(self, region: str, base_url: str, method: str, path: str, headers: Mapping[str, str],
                      body: bytes, *, still_reachable: Callable[[], bool], deadline_seconds: float,
                      marks: Mapping[str, str] | None = None, query: str = "") -> RelayedAnswer:
        """Send the request to `region` at `base_url`; its answer's head, or `RegionUnreachable`
        once `still_reachable()` turns false, the connection fails, or `deadline_seconds` pass.
        `path`: read decoded, apart from its `query` (as it came); `headers`: the caller's (those the
        API reads pass on); `marks`: this region's own word."""
        import aiohttp

        sent: dict[str, str] = {}
        for name, value in headers.items():  # a repeated header: its first value, as the API reads it
            if name.lower() in FORWARDED_REQUEST and name.lower() not in sent:
                sent[name.lower()] = value
        sent.update(marks or {})
        sent[RELAYED_BY] = self._here
        sent.update(self._signer.headers(region, method, signed_path(path, query), body, sent))
        request = asyncio.ensure_future(self._client().request(
            method, _as_signed(base_url, path, query), data=body or None, headers=sent, allow_redirects=False))
        loop = asyncio.get_running_loop()
        until = loop.time() + deadline_seconds
        try:
            while True:
                done, _ = await asyncio.wait({request}, timeout=CHECK_SECONDS)
                if done:
                    break
                if not still_reachable() or loop.time() > until:
                    raise RegionUnreachable("it stopped answering" if not still_reachable()
                                            else f"no answer within {deadline_seconds:g} s")
            response = request.result()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise RegionUnreachable(f"{type(exc).__name__}") from None
        finally:
            if not request.done():
                request.cancel()

        async def body_chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.content.iter_any():
                    yield chunk
            except (TimeoutError, aiohttp.ClientError, OSError):
                return  # the holding region went away mid-answer: the client sees the stream end
            finally:
                response.release()

        answer_headers = {name: value for name, value in response.headers.items()
                          if name.lower() in FORWARDED_ANSWER}
        return RelayedAnswer(response.status, answer_headers, body_chunks(), response.close)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _as_signed(base_url: str, path: str, query: str) -> URL:
    """The URL that carries `path` (read decoded) and `query` (as it came) as the receiver checks the
    signature over them: the path encoded whole (a `%`, `?` or `..` too: left as `?`, the holding
    region would read `/events?x` with `?y` as `/events` with `x?y`, the same signed text but
    another route), the query byte for byte. Re-spelled on the way (`w%61it` as `wait`), the
    holding region would take the request for a forgery."""
    return URL(str(URL(base_url).origin()) + quote(path, safe="/") + (f"?{query}" if query else ""), encoded=True)
