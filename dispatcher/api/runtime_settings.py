"""The runtime settings as this replica serves them: the record it last read from the store (at each
other replica's nudge, and once a second anyway), applied at once (capacity, keys); and the one way
to change it (read, change, compare-and-write, audit, nudge).

When the store does not answer, this replica goes on with the values it last read, and a change is
refused with 503: a change that only this replica applied would split the deployment. A restarted
replica reads the record before it serves (`catch_up`): runtime values outlive every replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from dispatcher.api.runtime_keys import RuntimeKeys
from dispatcher.errors import ApiError
from dispatcher.store.coordination import RuntimeBook
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.runtime")

READ_SECONDS = 1.0  # the re-read behind the nudges: a lost nudge costs at most this
WRITE_ATTEMPTS = 5
Record = dict[str, Any]
Change = Callable[[Record], list[dict[str, Any]]]  # changes the record in place; returns its audit lines


class RuntimeSettings:
    def __init__(self, book: RuntimeBook, keys: RuntimeKeys, *, region: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self._book = book
        self.keys = keys
        self._region = region
        self._clock = clock
        self.record: Record = {"version": 0, "capacity": {}, "keys": {}}
        self.listeners: list[Callable[[Record], None]] = []  # told of every new record (capacity's apply)
        self._nudged = asyncio.Event()
        self._uses: dict[str, int] = {}  # key name → sessions started here since the last flush

    def touched(self, name: str, started: int = 0) -> None:
        """Key `name` was used here (and started `started` sessions): written at the next read."""
        self._uses[name] = self._uses.get(name, 0) + started

    @property
    def capacity(self) -> dict[str, Any]:
        return dict(self.record["capacity"])

    async def catch_up(self) -> None:
        """Reads the record once before serving (a store that does not answer: the settings apply)."""
        with contextlib.suppress(StoreUnavailable):
            await self.refresh()

    async def refresh(self) -> None:
        raw = await self._book.read()
        if raw is not None:
            self._seen(_shaped(raw))
        self.keys.fresh()  # read: a revocation would have been in it

    async def run(self) -> None:
        """Reads the record at every nudge and at least once a second, until cancelled."""
        await self._book.listen(self._nudged.set)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudged.wait(), READ_SECONDS)
            self._nudged.clear()
            try:
                await self.refresh()
                await self._flush_uses()
            except StoreUnavailable:
                pass  # the values last read go on applying; the store's health says why
            except Exception:
                log.exception("reading the runtime settings failed")

    async def change(self, change: Change) -> Record:
        """An admin's change: compared and written, audited, then every replica nudged."""
        try:
            for _ in range(WRITE_ATTEMPTS):
                raw = await self._book.read()
                current: Record = _shaped(raw) if raw is not None else {"version": 0, "capacity": {}, "keys": {}}
                replaces = raw.get("version") if raw is not None else None
                changed = {**current, "capacity": dict(current["capacity"]), "keys": dict(current["keys"])}
                lines = change(changed)
                changed["version"] = max(int(self._clock() * 1000), int(current["version"]) + 1)
                if await self._book.write(changed, replaces if isinstance(replaces, int) else None):
                    # Written: from here the change stands, whatever the store says next. A trail line
                    # it did not take goes to the log instead (it holds no secret), never a 503 saying
                    # "nothing changed" that an admin would answer by creating the key a second time.
                    self._seen(changed)
                    for line in lines:
                        entry = {"at": self._clock(), "region": self._region or None, **line}
                        try:
                            await self._book.note(entry)
                        except StoreUnavailable:
                            log.error("the store did not take this runtime change's audit line: %s", entry)
                    with contextlib.suppress(StoreUnavailable):
                        await self._book.nudge()  # else the others read it within a second anyway
                    return changed
        except StoreUnavailable as exc:
            raise ApiError(503, "store_unavailable", "the deployment's store does not answer, so the change would "
                           "reach this replica alone; nothing changed, try again", retry_after=2.0) from exc
        raise ApiError(409, "runtime_change_conflict", "other changes kept arriving at the same time; read "
                       "GET /capacity (or GET /keys) and try again")

    async def history(self, limit: int) -> list[dict[str, Any]]:
        return await self._book.history(limit)

    async def _flush_uses(self) -> None:
        uses, self._uses = self._uses, {}
        for name, started in uses.items():
            await self._book.used(name, self._clock(), started)

    async def uses(self) -> dict[str, tuple[float, int]]:
        return await self._book.uses()

    def _seen(self, record: Record) -> None:
        if record["version"] == self.record["version"] and record["version"] != 0:
            return
        self.record = record
        self.keys.seen(record["keys"])
        for listener in self.listeners:
            try:
                listener(record)
            except Exception:
                log.exception("applying the runtime settings failed")


def _shaped(raw: dict[str, Any]) -> Record:
    """The record as this code reads it: a part of the wrong shape reads as empty."""
    version = raw.get("version")
    capacity, keys = raw.get("capacity"), raw.get("keys")
    return {"version": version if isinstance(version, int) else 0,
            "capacity": dict(capacity) if isinstance(capacity, dict) else {},
            "keys": dict(keys) if isinstance(keys, dict) else {}}
