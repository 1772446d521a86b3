"""The releases as this replica serves them: the configured catalogue, the traffic it last read
from the store (once a second, so an admin's change at any replica is seen within about a second),
and the one way to change that traffic (read, change, compare-and-write, audit).

When the store does not answer, starts go on with the traffic last read, and a change is refused
with 503: a change that only this replica applied would split the deployment.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.releases.adoption import adoption_line, as_adopted, refusal_of
from dispatcher.releases.catalogue import Catalogue, Release
from dispatcher.releases.choice import DrawKey, release_for
from dispatcher.releases.traffic import Traffic, Version, as_changed
from dispatcher.store.coordination import ReleaseBook
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.releases")

READ_SECONDS = 1.0  # how often each replica reads the traffic: a change is everywhere within ~1 s
WRITE_ATTEMPTS = 5  # concurrent changes at other replicas: read again and decide again, this often
Change = Callable[[Traffic, Version], Traffic]


class LiveReleases:
    def __init__(self, catalogue: Catalogue, book: ReleaseBook, *, region: str = "",
                 key_defaults: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time,
                 draw_secret: bytes | None = None) -> None:
        """`draw_secret`: the deployment's secret the draw is keyed with (the one that binds key names'
        sessions); without one, a secret of this process (a lone keyless dispatcher's ids are too)."""
        self.catalogue = catalogue
        self._draw_key = DrawKey(draw_secret or secrets.token_bytes(32))
        self._book = book
        self._region = region
        self._key_defaults = dict(key_defaults or {})
        self._clock = clock
        self._traffic: Traffic | None = None
        self.listeners: list[Callable[[Traffic], None]] = []  # told of every new traffic (the reserve, peers)

    @property
    def traffic(self) -> Traffic:
        """The traffic last read (before the first read: the configured first one, not recorded)."""
        if self._traffic is None:
            self._traffic = Traffic.first(self.catalogue, (0, self._region))
        return self._traffic

    def choose(self, session_id: str, *, pinned: str | None, caller_id: str,
               drawn_by_weight: bool = True) -> tuple[Release, str]:
        return release_for(self.traffic, self.catalogue, session_id, self._draw_key, pinned=pinned,
                           key_default=self._key_defaults.get(caller_id), drawn_by_weight=drawn_by_weight)

    def version(self) -> Version:
        """A version after the current one, even when clocks disagree by a little."""
        return max(int(self._clock() * 1000), self.traffic.version[0] + 1), self._region

    async def refresh(self) -> Traffic:
        """Reads the store's traffic (storing the first one, or this catalogue's additions, if due)."""
        return await self._write(lambda current, version: current.reconciled(self.catalogue, version),
                                 audit=True, forced=False)

    async def change(self, change: Change, *, audit: bool = True) -> Traffic:
        """An operator's (or the automatic rollback's) change, compared and written, then audited."""
        try:
            return await self._write(change, audit=audit, forced=True)
        except StoreUnavailable as exc:
            raise ApiError(503, "store_unavailable", "the deployment's store does not answer, so the change would "
                           "reach this replica alone; nothing changed, try again", retry_after=2.0) from exc

    async def adopt(self, record: Mapping[str, Any], *, sender: str, from_its_maker: bool = False) -> bool:
        """A newer traffic made in another region, read from `sender`: recorded here when it is newer
        than what is recorded, on the terms of adoption.py (else its refusal is raised).
        `from_its_maker`: read from the state answer of the region that made it, not pushed."""
        offered = Traffic.from_json(record)
        if offered is None:
            return False
        for _ in range(WRITE_ATTEMPTS):
            recorded = Traffic.from_json(await self._book.read())
            if recorded is not None and not offered.newer_than(recorded):
                self._seen(recorded)
                return False
            # Judged against the traffic as this region reads it now: over its own list, a release
            # a peer's record dropped listed again, waiting for its smoke session as before.
            here = (recorded or self.traffic).reconciled(self.catalogue, self.version())
            if (refusal := refusal_of(here, offered, from_its_maker=from_its_maker)) is not None:
                raise refusal
            adopted = as_adopted(here, offered)
            if await self._book.write(adopted.to_json(), list(recorded.version) if recorded else None):
                # In this region's trail too: who changed the traffic here, even from another region.
                await self._book.note(adoption_line(here, adopted, sender))
                self._seen(adopted)
                return True
        return False

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except StoreUnavailable:
                pass  # starts go on with the traffic last read; the store's health says why
            except Exception:
                log.exception("reading the releases' traffic failed")
            await asyncio.sleep(READ_SECONDS)

    async def history(self, limit: int) -> list[dict[str, Any]]:
        return await self._book.history(limit)

    async def _write(self, change: Change, *, audit: bool, forced: bool) -> Traffic:
        for _ in range(WRITE_ATTEMPTS):
            raw = await self._book.read()
            recorded = Traffic.from_json(raw) if raw is not None else None
            if raw is not None and recorded is None:
                log.error("the recorded releases' traffic is not a traffic record; rewriting it from the configuration")
            base = recorded or Traffic.first(self.catalogue, self.version())
            if recorded is not None:
                self._seen(recorded)
            changed = change(base.reconciled(self.catalogue, self.version()), self.version())
            if recorded is not None and changed is recorded and not forced:
                return recorded
            # The version read, even of a record that is no traffic (then rewritten from the configuration).
            replaces = raw.get("version") if raw is not None and isinstance(raw.get("version"), list) else None
            if await self._book.write(changed.to_json(), replaces):
                moved = recorded is None or (changed.weights, changed.stable, changed.smoke) != (
                    recorded.weights, recorded.stable, recorded.smoke)
                if audit and moved:
                    await self._book.note(as_changed(recorded or base, changed))
                    log.info("releases: %s (by %s): %s", changed.reason, changed.changed_by,
                             ", ".join(f"{n}={w}%" for n, w in changed.weights.items()))
                self._seen(changed)
                return changed
        raise ApiError(409, "release_change_conflict", "other changes to the releases kept arriving at the same "
                       "time; read GET /releases and try again")

    def _seen(self, traffic: Traffic) -> None:
        if self._traffic is not None and traffic.version == self._traffic.version:
            self._traffic = traffic
            return
        self._traffic = traffic
        for listener in self.listeners:
            listener(traffic)
