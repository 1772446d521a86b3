"""A start is admitted only while the model service has a free stream for its bot, and its key holds
no more than its share of the streams.

The service's own count shows a stream once the bot has opened it, a few seconds after its start;
until then the start is counted in the replicas' store (for MODEL_SERVICE_CONNECT_SECONDS, or until
the session is stopped: a record per session in a reserved holder of the keys' session records), so
a burst spread over every replica cannot be admitted on one read past the streams there are.
Counted twice in that window (there and in the service's count once the bot connects), a start
errs on the side of refusing. Every session of a converged deployment holds a stream, so a key's
streams are its sessions: held to its `KEY_SESSION_SHARE` of the service's `total` (at least one),
in the same store script, wherever the key's share of sessions applies. With the store down, each
replica counts its own. A refusal for the service is `503` with `Retry-After`, naming the service
and its free streams (an unknown capacity, dispatcher/models/capacity.py, too, saying why); one for
the key's share is `429 key_model_share`.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.models.capacity import ModelServiceCapacity
from dispatcher.store.coordination import KeySessions
from dispatcher.store.key_sessions import LocalKeySessions
from dispatcher.store.share_ask import CallerShare, HeldBy

# A stream frees when a call ends (minutes); an unreachable service is read again within seconds.
FULL_RETRY_AFTER_SECONDS = 5.0
STARTING = "model-service-starts"  # the holder of the starts' records: never a caller id (those are digests)


@dataclass(frozen=True)
class StreamShare:
    """The key a start is for (dispatcher/sessions/key_share.py): its fraction of the streams, how long
    its sessions' records last, and how to drop those of them that ended (True: some did)."""

    caller: str
    fraction: float
    record_seconds: float
    released_ended: Callable[[dict[str, float]], Awaitable[bool]]


class ModelServiceAdmission:
    def __init__(self, capacity: ModelServiceCapacity, starting: KeySessions | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self._starting = starting if starting is not None else LocalKeySessions(clock)  # every replica's starts
        self._clock = clock
        self._starts: list[float] = []  # when each start admitted here began counting (for GET /status)

    def counted_here(self) -> int:
        """Starts admitted here in the last MODEL_SERVICE_CONNECT_SECONDS, counted against the free streams."""
        since = self._clock() - self.capacity.settings.connect_seconds
        self._starts = [at for at in self._starts if at > since]
        return len(self._starts)

    @asynccontextmanager
    async def slot(self, session_id: str, key: StreamShare | None = None) -> AsyncIterator[None]:
        """Held while the start launches its bot: a start that fails gives its stream back, as does
        a session stopped (`stopped`), so starts stopped at once cannot hold every stream. With
        `key`, its sessions (this one taken already) are held to its share of the streams."""
        reading = self.capacity.reading()
        if reading.age_seconds is None:  # the first start after boot waits for the first read
            reading = await self.capacity.read_now()
        shown = self.capacity.settings.shown
        if not reading.known:
            raise ApiError(503, "model_service_unavailable",
                           f"the model service {shown} cannot take a call now: its free streams are unknown "
                           f"({reading.problem}); try again shortly",
                           retry_after=self.capacity.settings.read_seconds,
                           extra={"model_service": shown, "free_streams": None})
        assert reading.free is not None
        record = session_id
        held = await self._held(record, reading.free, reading.total or 0, key)
        if held is not None:
            starting = len(held)
            free = reading.free - starting
            raise ApiError(503, "model_service_capacity",
                           f"the model service {shown} has no free stream: {max(0, free)} of {reading.total} free "
                           f"({reading.free} by its count, {starting} starting): try again when a call ends, "
                           f"or give the service more streams (another GPU)",
                           retry_after=FULL_RETRY_AFTER_SECONDS,
                           extra={"model_service": shown, "free_streams": max(0, free)})
        started = self._clock()
        self._starts.append(started)
        try:
            yield
        except BaseException:
            if started in self._starts:  # not yet aged out
                self._starts.remove(started)
            await self._starting.release(STARTING, [record])
            raise

    async def _held(self, record: str, free: int, total: int, key: StreamShare | None) -> dict[str, float] | None:
        """The starts under way when they take every free stream; None once this one is counted."""
        seconds = self.capacity.settings.connect_seconds
        if key is None:
            return await self._starting.hold(STARTING, record, free, seconds)
        mine = CallerShare(key.caller, max(1, math.floor(key.fraction * total)), key.record_seconds)
        refused = await self._starting.hold_within(STARTING, record, free, seconds, mine)
        if refused is not None and refused.whose == "caller" and await key.released_ended(refused.held):
            refused = await self._starting.hold_within(STARTING, record, free, seconds, mine)
        if refused is not None and refused.whose == "caller":
            raise self._key_refused(refused, key.fraction, total, mine.share)
        return None if refused is None else refused.held

    def _key_refused(self, refused: HeldBy, fraction: float, total: int, share: int) -> ApiError:
        return ApiError(429, "key_model_share",
                        f"this API key already runs {len(refused.held) - 1} sessions, its share of the model "
                        f"service {self.capacity.settings.shown}'s streams ({fraction:g} of its {total}: {share}) "
                        "while other keys use this deployment: stop one of them or try again when one ends",
                        retry_after=FULL_RETRY_AFTER_SECONDS,
                        extra={"model_service": self.capacity.settings.shown, "key_streams": share})

    async def stopped(self, session_id: str) -> None:
        """The session's start no longer counts against the free streams: it was stopped."""
        await self._starting.release(STARTING, [session_id])

    def status(self) -> dict[str, Any]:
        """What `GET /status` shows of the service."""
        reading = self.capacity.reading()
        return {"url": self.capacity.settings.shown, **reading.as_json(), "starting_here": self.counted_here()}
