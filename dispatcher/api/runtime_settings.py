"""The runtime settings as this replica serves them: the record it last read from the store (at each
other replica's nudge, and once a second anyway), applied at once (capacity, keys); and the two ways
to change it, each a read, a change, a compare-and-write, its audit lines and a nudge: an admin's
change here (`change`), and another region's changes merged in (`adopt`, dispatcher/regions/runtime.py).
The record keeps its entries (dispatcher/api/runtime_entries.py), which every region merges alike.

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

from dispatcher.api import runtime_entries, runtime_floors
from dispatcher.api.runtime_entries import Entries
from dispatcher.api.runtime_keys import RuntimeKeys
from dispatcher.errors import ApiError
from dispatcher.store.coordination import RuntimeBook
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.runtime")

READ_SECONDS = 1.0  # the re-read behind the nudges: a lost nudge costs at most this
WRITE_ATTEMPTS = 5
Record = dict[str, Any]
Change = Callable[[Record], list[dict[str, Any]]]  # changes the record in place; returns its audit lines
# What a change puts in the record beside its views: the key names it revokes whole (each a revocation
# of the name, which wins over a secret of it another region makes meanwhile). Taken out before writing.
REVOKED_NAMES = "revoked_names"
USED_NAMES = "used_names"  # likewise: the key names this region used first, for the names ever used
# And the keys of DISPATCHER_API_KEYS it revokes, `[secret id, name]` each (dispatcher/api/settings_key_ids.py).
REVOKED_SETTINGS = "revoked_settings"
ONE_REGION = "local"  # what a version names where REGION is not set (a deployment of one region)


class RuntimeSettings:
    def __init__(self, book: RuntimeBook, keys: RuntimeKeys, *, region: str = "",
                 clock: Callable[[], float] = time.time,
                 keeping: runtime_floors.Keeping = runtime_floors.KEEPING) -> None:
        """`keeping`: how long and how many revoked secrets keep their entry (docs/security.md)."""
        self._book = book
        self._keeping = keeping
        self.keys = keys
        self._region = region
        self._clock = clock
        self.record: Record = _empty()
        self.listeners: list[Callable[[Record], None]] = []  # told of every new record (capacity's apply)
        self.made: list[Callable[[Entries], None]] = []  # told what each change made here added (the push)
        self._digest: tuple[int, str] = (-1, "")
        self._nudged = asyncio.Event()
        self._uses: dict[str, int] = {}  # key name → sessions started here since the last flush
        self._secret_uses: set[str] = set()  # runtime secrets used here since the last flush
        self._writes = 0  # changes written here: a read begun before one carries the record it replaced

    def touched_secret(self, secret_id: str) -> None:
        """A runtime key's secret `secret_id` was used here: written at the next read, as its own use."""
        self._secret_uses.add(secret_id)

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
        writes = self._writes
        raw = await self._book.read()
        if self._writes != writes:  # a change written here since the read began: newer than what it got
            return
        # Read once a second by every replica: the entries are checked again only when they changed.
        if raw is not None and (raw.get("version") != self.record["version"] or not raw.get("version")):
            self._seen(_shaped(raw, self._region))
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
        """An admin's change: compared and written, audited, then every replica nudged and every
        region sent what it added."""
        delta: Entries = runtime_entries.empty()

        def stamped(current: Record) -> list[dict[str, Any]]:
            nonlocal delta
            before = (dict(current["capacity"]), dict(current["keys"]))
            lines = change(current)
            revoked = current.pop(REVOKED_NAMES, ())
            used = current.pop(USED_NAMES, ())
            version = (max(int(self._clock() * 1000), runtime_entries.newest_ms(current["entries"]) + 1),
                       self._region or ONE_REGION)
            by = str(lines[0].get("by", "")) if lines else ""
            settings_revoked = current.pop(REVOKED_SETTINGS, ())
            current["entries"], delta = runtime_entries.stamped(
                current["entries"], before, (current["capacity"], current["keys"]), revoked, by, version, used)
            for secret_id, name in settings_revoked:  # a revoked entry, as a runtime secret's: for good
                entry = {"name": name, "revoked": list(version), "by": by}
                current["entries"]["secrets"][secret_id] = delta["secrets"][secret_id] = entry
            current["entries"] = self._compacted(current["entries"])
            current["capacity"], current["keys"] = runtime_entries.views(current["entries"])
            return lines

        written = await self._written(stamped, conflict="other changes kept arriving at the same time; read "
                                      "GET /capacity (or GET /keys) and try again")
        for listener in self.made:
            listener(delta)
        return written

    async def adopt(self, offered: Entries) -> bool:
        """Another region's changes (checked entries) merged into this region's: False when they add
        nothing here. Each value or key they change is audited, naming the region that made it."""
        if runtime_entries.merged(self.record["entries"], offered) == self.record["entries"]:
            return False  # nothing new to the record last read: no store round trip
        changed = False

        def merge(current: Record) -> list[dict[str, Any]]:
            nonlocal changed
            entries = self._compacted(runtime_entries.merged(current["entries"], offered))
            changed = entries != current["entries"]
            if not changed:
                raise _Unchanged
            before = (dict(current["capacity"]), dict(current["keys"]))
            current["entries"] = entries
            current["capacity"], current["keys"] = runtime_entries.views(entries)
            return _adopted_lines(entries, before, (current["capacity"], current["keys"]))

        try:
            await self._written(merge, conflict="this region's own changes kept arriving; the next poll "
                                "of the region that made them brings them again")
        except _Unchanged:
            return False
        return changed

    def _compacted(self, entries: Entries) -> Entries:
        """`entries` with the revoked secrets past their keeping dropped under their names' floors."""
        floors = runtime_floors.FLOORS
        secrets, raised = runtime_floors.compacted(entries["secrets"], entries[floors], int(self._clock() * 1000),
                                                   self._keeping)
        return {**entries, "secrets": secrets, floors: raised}

    def entries(self) -> Entries:
        entries: Entries = self.record["entries"]
        return entries

    def digest(self) -> str:
        """What this replica's record holds, the same in every region holding the same entries."""
        if self._digest[0] != self.record["version"]:
            self._digest = (self.record["version"], runtime_entries.digest(self.record["entries"]))
        return self._digest[1]

    async def _written(self, change: Change, *, conflict: str) -> Record:
        try:
            for _ in range(WRITE_ATTEMPTS):
                raw = await self._book.read()
                current = _shaped(raw, self._region) if raw is not None else _empty()
                replaces = raw.get("version") if raw is not None else None
                changed = {**current, "capacity": dict(current["capacity"]), "keys": dict(current["keys"])}
                lines = change(changed)
                changed["version"] = max(int(self._clock() * 1000), int(current["version"]) + 1)
                if await self._book.write(changed, replaces if isinstance(replaces, int) else None):
                    # Written: from here the change stands, whatever the store says next. A trail line
                    # it did not take goes to the log instead (it holds no secret), never a 503 saying
                    # "nothing changed" that an admin would answer by creating the key a second time.
                    self._writes += 1
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
        raise ApiError(409, "runtime_change_conflict", conflict)

    async def history(self, limit: int) -> list[dict[str, Any]]:
        return await self._book.history(limit)

    async def _flush_uses(self) -> None:
        uses, self._uses = self._uses, {}
        for name, started in uses.items():
            await self._book.used(name, self._clock(), started)
        secrets, self._secret_uses = self._secret_uses, set()
        for secret_id in secrets:  # beside the names' uses: no key name holds a ':'
            await self._book.used(secret_use(secret_id), self._clock(), 0)
        first = sorted(set(uses) - set(self.record["entries"]["used"]))
        if first:  # once per name and region: the names ever used, kept and carried to every region
            try:
                await self.change(lambda current: current.update({USED_NAMES: first}) or [])
            except ApiError as exc:  # a conflict, or the store gone: tried again at the next read
                log.warning("the first use of key name(s) %s was not recorded: %s", ", ".join(first), exc.message)
                for name in first:
                    self._uses.setdefault(name, 0)

    async def uses(self) -> dict[str, tuple[float, int]]:
        return await self._book.uses()

    def _seen(self, record: Record) -> None:
        if record["version"] == self.record["version"] and record["version"] != 0:
            return
        self.record = record
        self.keys.seen(record["keys"], runtime_entries.revoked_records(record["entries"]))
        for listener in self.listeners:
            try:
                listener(record)
            except Exception:
                log.exception("applying the runtime settings failed")


def secret_use(secret_id: str) -> str:
    """Where a runtime secret's own last use is kept among the names' uses."""
    return f"secret:{secret_id}"


class _Unchanged(Exception):
    """Another region's changes were in this region's record already: nothing to write."""


def _empty() -> Record:
    return {"version": 0, "capacity": {}, "keys": {}, "entries": runtime_entries.empty()}


def _shaped(raw: dict[str, Any], region: str) -> Record:
    """The record as this code reads it: a part of the wrong shape reads as empty. One kept before
    the record had entries reads as entries made at its version in this region."""
    version = raw.get("version")
    version = version if isinstance(version, int) else 0
    try:
        # Unbounded here: past MAX_ENTRIES, rebuilding from the views would drop every revocation
        # (and the next write would keep them dropped); the peers refuse so big a record, loudly.
        entries = runtime_entries.checked(raw["entries"], most=None)
    except (KeyError, ValueError):
        capacity, keys = raw.get("capacity"), raw.get("keys")
        entries = runtime_entries.of_views(capacity if isinstance(capacity, dict) else {},
                                           keys if isinstance(keys, dict) else {}, (version, region or ONE_REGION))
    capacity, keys = runtime_entries.views(entries)
    return {"version": version, "capacity": capacity, "keys": keys, "entries": entries}


def _adopted_lines(entries: Entries, before: tuple[dict[str, Any], dict[str, Any]],
                   after: tuple[dict[str, Any], dict[str, Any]]) -> list[dict[str, Any]]:
    """The audit lines of another region's changes: what each did here, by whom, in which region."""
    lines: list[dict[str, Any]] = []
    (capacity_before, keys_before), (capacity_after, keys_after) = before, after
    for name in sorted(set(capacity_before) | set(capacity_after)):
        if capacity_before.get(name) != capacity_after.get(name):
            entry = entries["capacity"][name]
            lines.append({**_made(entry, entry["version"]), "action": "capacity.set", "name": name,
                          "old": capacity_before.get(name), "new": capacity_after.get(name)})
    for secret_id in sorted(set(keys_after) - set(keys_before)):
        entry = entries["secrets"][secret_id]
        lines.append({**_made(entry, entry["version"]), "action": "key.create", "name": entry["name"],
                      "secret_id": secret_id})
    for secret_id in sorted(set(keys_before) - set(keys_after)):
        if secret_id not in entries["secrets"]:  # dropped under its name's floor: revoked, compacted elsewhere
            name = keys_before[secret_id]["name"]
            floor = entries[runtime_floors.FLOORS][name]["version"]
            lines.append({**_made({"by": "revoked before its entry was compacted"}, floor), "action": "key.revoke",
                          "name": name, "secret_id": secret_id})
            continue
        entry = entries["secrets"][secret_id]
        revoked = entry if "revoked" in entry else entries["names"][entry["name"]]
        lines.append({**_made(revoked, revoked["revoked"]), "action": "key.revoke", "name": entry["name"],
                      "secret_id": secret_id})
    return lines


def _made(entry: dict[str, Any], version: list[Any]) -> dict[str, Any]:
    return {"by": f"region {version[1]}: {entry.get('by', '')}", "region": version[1]}
