"""Bounds on the connections that wait on a session (its event stream, a long-poll).

Each holds a connection and a watcher for up to its deadline, so their number is bounded per API
key (one key cannot take them all) and per replica; past either bound a new one is refused with
429 and `Retry-After`, the way a client is told to come back later everywhere else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from dispatcher.errors import ApiError

RETRY_AFTER_SECONDS = 5.0


class StreamSlots:
    def __init__(self, total: int, per_key: int) -> None:
        self._total = total
        self._per_key = per_key
        self._held: Counter[str] = Counter()

    def take(self, key: str) -> Callable[[], None]:
        """A slot for `key`, or 429; returns its release (idempotent: a stream's end and its
        cancellation may both call it)."""
        if self._held[key] >= self._per_key:
            raise ApiError(429, "too_many_waits", f"this key already holds {self._per_key} open session "
                           "waits (event streams and long-polls)", retry_after=RETRY_AFTER_SECONDS)
        if self._held.total() >= self._total:
            raise ApiError(429, "too_many_waits", "this replica holds as many open session waits as it allows",
                           retry_after=RETRY_AFTER_SECONDS)
        self._held[key] += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._held[key] -= 1
            if not self._held[key]:
                del self._held[key]

        return release

    @property
    def held(self) -> int:
        return self._held.total()


class HeldStream(StreamingResponse):
    """A streaming answer that gives its slot back however it ends: finished, cut by the client,
    or cancelled before its first byte (when a generator's own `finally` would never run)."""

    def __init__(self, content: Any, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
