"""The model service's free streams, read every MODEL_SERVICE_READ_SECONDS off the request path.

`GET {MODEL_SERVICE_URL}/api/capacity` answers `{"free": n, "total": N}`. Each read has a timeout and a
few retries with backoff, all within one read interval. What a start is decided on is the last read,
and only while it is trusted: a read that failed, an answer that is no capacity (not JSON, a negative
or non-whole number, more free than total) or one older than three intervals is *unknown*, with the
reason in words, never a number to admit on. Unknown is not zero: /status says which.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dispatcher.models.settings import ModelServiceSettings
from dispatcher.outbound.http_client import HttpClient
from dispatcher.outbound.retry import Backoff, Transient, send

log = logging.getLogger("dispatcher.models")

MAX_ANSWER_BYTES = 4096  # a capacity is a few bytes: anything longer is not one


@dataclass(frozen=True)
class Reading:
    """The service's capacity as last read: `free` and `total` when known, else `problem`."""

    free: int | None
    total: int | None
    problem: str | None
    age_seconds: float | None  # since the read was asked for; None: never read

    @property
    def known(self) -> bool:
        return self.problem is None

    def as_json(self) -> dict[str, Any]:
        age = round(self.age_seconds, 3) if self.age_seconds is not None else None
        return {"state": "ok" if self.known else "unknown", "free": self.free, "total": self.total,
                "read_seconds_ago": age, "problem": self.problem}


def parse_capacity(answer: Any) -> tuple[int, int]:
    """`free` and `total` from the service's answer, or ValueError saying what is wrong with it."""
    if not isinstance(answer, dict):
        raise ValueError(f"not an object with free and total: {str(answer)[:60]!r}")
    free, total = answer.get("free"), answer.get("total")
    for name, value in (("free", free), ("total", total)):
        if isinstance(value, bool) or not isinstance(value, int):  # JSON true is no count, nor is 1.5
            raise ValueError(f"{name} is {str(value)[:20]!r}, not a whole number")
        if value < 0:
            raise ValueError(f"{name} is negative ({value})")
    assert isinstance(free, int) and isinstance(total, int)
    if free > total:
        raise ValueError(f"free ({free}) is more than total ({total})")
    return free, total


class ModelServiceCapacity:
    def __init__(self, settings: ModelServiceSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        # No redirect followed: a capacity answered by another host is not this service's.
        self._client = HttpClient(timeout=settings.timeout_seconds, follow_redirects=False,
                                  max_answer_bytes=MAX_ANSWER_BYTES, connections=2)
        self._backoff = Backoff(attempts=3, base=0.1, cap=0.5, deadline=settings.read_seconds)
        self._read: tuple[int, int] | None = None  # the last answer, when it was a capacity
        self._problem: str | None = "not read yet"
        self._asked_at: float | None = None
        self._reading: asyncio.Task[None] | None = None

    def reading(self) -> Reading:
        """The capacity now, as the last read left it (no call)."""
        if self._asked_at is None:
            return Reading(None, None, self._problem, None)
        age = self._clock() - self._asked_at
        if self._problem is not None:
            return Reading(None, None, self._problem, age)
        if age > self.settings.stale_seconds:
            return Reading(None, None, f"its last answer is {age:.1f} s old (stale past "
                                       f"{self.settings.stale_seconds:g} s)", age)
        assert self._read is not None
        return Reading(*self._read, None, age)

    async def read_now(self) -> Reading:
        """One read (or the one under way), then the capacity it left."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read_once(), name="model-service-capacity")
        await asyncio.shield(self._reading)  # a start that goes away does not cancel others' read
        return self.reading()

    async def run(self) -> None:
        """Read every MODEL_SERVICE_READ_SECONDS while the app serves."""
        while True:
            await self.read_now()
            await asyncio.sleep(self.settings.read_seconds)

    async def _read_once(self) -> None:
        asked = self._clock()
        problem = await self._ask()
        was = self._problem
        self._asked_at = asked
        self._problem = problem
        if problem is not None and problem != was:
            log.warning("model service %s: capacity unknown: %s", self.settings.shown, problem)
        elif problem is None and was is not None:
            log.info("model service %s: capacity read again (%s free of %s)", self.settings.shown, *self._read or ())

    async def _ask(self) -> str | None:
        """None when the service answered a capacity (kept), else why there is none."""
        try:
            response = await send(self._client, "GET", self.settings.capacity_url, backoff=self._backoff,
                                  timeout=self.settings.timeout_seconds)
        except Transient as exc:
            return f"no answer: {exc}"
        if response.status_code != 200:
            return f"its capacity answered HTTP {response.status_code}"
        try:
            self._read = parse_capacity(response.json())
        except ValueError as exc:
            return f"its answer is no capacity: {exc}"
        return None

    async def aclose(self) -> None:
        if self._reading is not None and not self._reading.done():
            self._reading.cancel()
            await asyncio.wait({self._reading})
        await self._client.aclose()
