"""A campaign's rows and their progress (dispatcher/campaigns/): in this process's memory (one dispatcher) or
in the store (several replicas: campaign_records.py), the same contract.

Each row waits in `ready` (due at once, or a retry's time) until a replica claims it: the claim moves it to
`active` under a lease held by one holder (a replica's worker), which renews it while its call goes on and
settles the row once the call ended: done, or back to `ready` for a retry. A row whose lease ran out (its
replica died) is claimed again by whoever looks next, first of all, whatever the campaign's status: its
call may be under way, and is followed, never placed twice (its Idempotency-Key is the same). A write by a
holder whose lease was taken over is refused (`False`, `LOST`), so a stalled replica changes nothing. The
lease's fence is one per claim (`Claimed.lease`: the holder and a fresh token), so a replica that re-claims
its own expired row after a pause still has its old claim's writes refused.
At most `concurrency` rows are active at once; a stopped campaign claims no new row, and a row claimed before
the stop places no call: `fence`, just before the carrier's create, finds the campaign stopped."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

RUNNING, STOPPED, FINISHED = "running", "stopped", "finished"
# What `settle` says: the holder's lease was lost (nothing written), the row is settled, or it was the
# campaign's last (the campaign has just finished: its webhook is the settler's to send, once).
LOST, SETTLED, LAST = "lost", "settled", "last"
# What `fence` says: the lease renewed (the call may be created), or the campaign stopped since the claim.
HELD, HALTED = "held", "halted"
KEEP_SECONDS = 30 * 86_400.0  # a campaign's records are kept 30 days from its creation or its last rows added
# The index of every key's campaigns (an admin's `GET /campaigns`) keeps the newest this many: past them the
# oldest drop out of it (still listed by their key's own index, `GET /campaigns?key=`).
EVERY_KEPT = 100_000


@dataclass(frozen=True)
class Limits:
    """What one key may keep in the book: its campaigns not finished, the rows of its campaigns kept (within
    KEEP_SECONDS), and one campaign's rows; and how many campaigns of every key the index an admin lists
    keeps (the oldest past it drop out of that index). Checked in the same atomic step that writes."""

    live: int = 100
    key_rows: int = 1_000_000
    rows: int = 100_000
    every: int = EVERY_KEPT


DEFAULT_LIMITS = Limits()


class DuplicateNumber(Exception):
    """Nothing written: `number` is the campaign's row `row` already (a number is called once a campaign)."""

    def __init__(self, number: str, row: str) -> None:
        super().__init__(f"{number} is row {row}")
        self.number, self.row = number, row


class OverLimit(Exception):
    """Nothing written: `which` (`live`, `key_rows` or `rows`) would pass its `most`; `have` already."""

    def __init__(self, which: str, most: int, have: int) -> None:
        super().__init__(f"{which}: {have} of {most}")
        self.which, self.most, self.have = which, most, have


def row_id(index: int) -> str:
    """Zero-padded, so the store's order of rows due together is the file's."""
    return f"{index:06d}"


def lease_token(holder: str) -> str:
    """The fence of one claim: the holder's name (for logs) and a token no other claim has."""
    return f"{holder}:{secrets.token_hex(8)}"


@dataclass(frozen=True)
class Claimed:
    row: str
    lease: str  # this claim's fence: every later write about the row names it (`holder` below)
    call: dict[str, Any]  # `to`, `body`: as given
    state: dict[str, Any]  # its progress: attempts, session ids, outcome


@dataclass(frozen=True)
class CampaignRecord:
    meta: dict[str, str]  # `spec` (JSON text), `status`, `created`, `finished`, `concurrency`, `owner`
    counts: dict[str, int]
    pending: int  # rows never claimed yet
    retrying: int  # rows waiting for a retry's time
    in_progress: int  # rows claimed: being placed, or their call under way


class CampaignBook(Protocol):
    async def open(self, campaign_id: str, meta: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> None:
        """A new campaign of `meta["owner"]`, `stopped` until `set_status` starts it (its rows are added
        meanwhile); `OverLimit` (`live`) when its key has `limits.live` campaigns not finished."""
        ...

    async def append(self, campaign_id: str, rows: Sequence[Mapping[str, Any]], states: Sequence[Mapping[str, Any]],
                     ready: Sequence[bool], skipped: int, limits: Limits = DEFAULT_LIMITS) -> int | None:
        """Rows added after the campaign's last (`ready`: each row's, False for one skipped); its rows in all
        now, or None when it is unknown or finished (nothing added). `OverLimit` (`rows`, `key_rows`): the
        campaign's or its key's rows would pass their bound, checked with the total as it is when written;
        `DuplicateNumber`: a row's `to` is in the campaign already (the request's rows are distinct).
        Every record of the campaign is kept KEEP_SECONDS from now."""
        ...

    async def claim(self, campaign_id: str, holder: str, now: float, lease_seconds: float) -> Claimed | None:
        """A row's lease: a new fence (`Claimed.lease`) that `renew`, `note` and `settle` then name as `holder`."""
        ...

    async def renew(self, campaign_id: str, row: str, holder: str, until: float) -> bool: ...

    async def fence(self, campaign_id: str, row: str, holder: str, until: float) -> str:
        """Just before the row's call is created, in one step: LOST (the lease is another claim's), HALTED (the
        campaign was stopped since the claim: nothing renewed) or HELD (the lease renewed to `until`)."""
        ...

    async def note(self, campaign_id: str, row: str, holder: str, state: Mapping[str, Any],
                   counts: Sequence[str]) -> bool:
        """The row's state while its lease is held (its call placed), `counts` each counted once more."""
        ...

    async def settle(self, campaign_id: str, row: str, holder: str, state: Mapping[str, Any], due: float | None,
                     counts: Sequence[str], now: float) -> str:
        """The row's lease given up: done (`due` None) or ready again at `due`; LOST, SETTLED or LAST."""
        ...

    async def set_status(self, campaign_id: str, status: str, now: float) -> tuple[str, bool] | None:
        """`running` or `stopped` (a finished campaign stays finished): its status now, and whether this
        finished it (no row left to call); None if unknown."""
        ...

    async def read(self, campaign_id: str) -> CampaignRecord | None: ...

    async def listed(self, owner: str | None, limit: int, offset: int = 0) -> list[str]:
        """The key's campaigns (None: every key's, the `Limits.every` newest), the newest (created or given rows)
        first, from the `offset`th."""
        ...

    async def live(self, now: float) -> list[str]:
        """The campaigns with something due by `now`: a row to claim (running, below its concurrency), a
        retry come due, a lease run out. A stopped campaign with no call under way is not among them."""
        ...

    async def rows(self, campaign_id: str, start: int, count: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Rows `start`…: each (call, state)."""
        ...

    async def forget(self, campaign_id: str, owner: str | None = None) -> None:
        """A campaign whose records expired, out of the indexes (every key's, and its key's when named)."""
        ...


@dataclass
class _Campaign:
    meta: dict[str, Any]
    rows: list[dict[str, Any]]
    states: dict[str, dict[str, Any]]
    ready: dict[str, float] = field(default_factory=dict)  # row → due
    active: dict[str, float] = field(default_factory=dict)  # row → lease end
    holders: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    numbers: dict[str, str] = field(default_factory=dict)  # each row's `to` → its row


class MemoryCampaignBook:
    """One dispatcher's campaigns, in its memory (gone with the process, as its sessions are)."""

    def __init__(self) -> None:
        self._campaigns: dict[str, _Campaign] = {}
        self._every: dict[str, None] = {}  # every key's campaigns, oldest opened first, at most `Limits.every`

    async def open(self, campaign_id: str, meta: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> None:
        owner = str(meta["owner"])
        live = sum(1 for c in self._campaigns.values() if c.meta["owner"] == owner and c.meta["status"] != FINISHED)
        if live >= limits.live:
            raise OverLimit("live", limits.live, live)
        self._campaigns[campaign_id] = _Campaign(meta={**{k: str(v) for k, v in meta.items()}, "status": STOPPED,
                                                       "total": "0"}, rows=[], states={}, counts={"skipped": 0})
        self._every[campaign_id] = None
        while len(self._every) > limits.every:
            del self._every[next(iter(self._every))]

    async def append(self, campaign_id: str, rows: Sequence[Mapping[str, Any]], states: Sequence[Mapping[str, Any]],
                     ready: Sequence[bool], skipped: int, limits: Limits = DEFAULT_LIMITS) -> int | None:
        c = self._campaigns.get(campaign_id)
        if c is None or c.meta["status"] == FINISHED:
            return None
        if len(c.rows) + len(rows) > limits.rows:
            raise OverLimit("rows", limits.rows, len(c.rows))
        key_rows = sum(len(o.rows) for o in self._campaigns.values() if o.meta["owner"] == c.meta["owner"])
        if key_rows + len(rows) > limits.key_rows:
            raise OverLimit("key_rows", limits.key_rows, key_rows)
        for call in rows:
            if (earlier := c.numbers.get(str(call["to"]))) is not None:
                raise DuplicateNumber(str(call["to"]), earlier)
        for call, state, due in zip(rows, states, ready, strict=True):
            row = row_id(len(c.rows))
            c.rows.append(copy.deepcopy(dict(call)))
            c.states[row] = copy.deepcopy(dict(state))
            c.numbers[str(call["to"])] = row
            if due:
                c.ready[row] = 0.0
        c.counts["skipped"] += skipped
        c.meta["total"] = str(len(c.rows))
        return len(c.rows)

    async def claim(self, campaign_id: str, holder: str, now: float, lease_seconds: float) -> Claimed | None:
        c = self._campaigns.get(campaign_id)
        if c is None:
            return None
        expired = sorted((until, row) for row, until in c.active.items() if until <= now)
        if expired:
            row = expired[0][1]
        elif c.meta["status"] == RUNNING and len(c.active) < int(c.meta["concurrency"]):
            due = sorted((at, row) for row, at in c.ready.items() if at <= now)
            if not due:
                return None
            row = due[0][1]
            del c.ready[row]
        else:
            return None
        lease = lease_token(holder)
        c.active[row], c.holders[row] = now + lease_seconds, lease
        return Claimed(row, lease, copy.deepcopy(c.rows[int(row)]), copy.deepcopy(c.states[row]))

    async def renew(self, campaign_id: str, row: str, holder: str, until: float) -> bool:
        c = self._campaigns.get(campaign_id)
        if c is None or c.holders.get(row) != holder:
            return False
        c.active[row] = until
        return True

    async def fence(self, campaign_id: str, row: str, holder: str, until: float) -> str:
        c = self._campaigns.get(campaign_id)
        if c is None or c.holders.get(row) != holder:
            return LOST
        if c.meta["status"] != RUNNING:
            return HALTED
        c.active[row] = until
        return HELD

    async def note(self, campaign_id: str, row: str, holder: str, state: Mapping[str, Any],
                   counts: Sequence[str]) -> bool:
        c = self._campaigns.get(campaign_id)
        if c is None or c.holders.get(row) != holder:
            return False
        c.states[row] = copy.deepcopy(dict(state))
        for name in counts:
            c.counts[name] = c.counts.get(name, 0) + 1
        return True

    async def settle(self, campaign_id: str, row: str, holder: str, state: Mapping[str, Any], due: float | None,
                     counts: Sequence[str], now: float) -> str:
        c = self._campaigns.get(campaign_id)
        if c is None or not await self.note(campaign_id, row, holder, state, counts):
            return LOST
        del c.holders[row], c.active[row]
        if due is not None:
            c.ready[row] = due
        if not c.ready and not c.active and c.meta["status"] != FINISHED:
            c.meta |= {"status": FINISHED, "finished": str(now)}
            return LAST
        return SETTLED

    async def set_status(self, campaign_id: str, status: str, now: float) -> tuple[str, bool] | None:
        c = self._campaigns.get(campaign_id)
        if c is None:
            return None
        if c.meta["status"] == FINISHED:
            return FINISHED, False
        if not c.ready and not c.active:
            c.meta |= {"status": FINISHED, "finished": str(now)}
            return FINISHED, True
        c.meta["status"] = status
        return status, False

    async def read(self, campaign_id: str) -> CampaignRecord | None:
        c = self._campaigns.get(campaign_id)
        if c is None:
            return None
        return CampaignRecord(copy.deepcopy(c.meta), dict(c.counts), sum(1 for at in c.ready.values() if at == 0),
                              sum(1 for at in c.ready.values() if at > 0), len(c.active))

    async def listed(self, owner: str | None, limit: int, offset: int = 0) -> list[str]:
        newest = sorted(((campaign_id, c) for campaign_id, c in self._campaigns.items()
                         if (campaign_id in self._every if owner is None else c.meta["owner"] == owner)),
                        key=lambda item: -float(item[1].meta["created"]))
        return [campaign_id for campaign_id, _ in newest[offset:offset + limit]]

    async def live(self, now: float) -> list[str]:
        return [campaign_id for campaign_id, c in self._campaigns.items()
                if (due := _due(c)) is not None and due <= now]

    async def rows(self, campaign_id: str, start: int, count: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        c = self._campaigns.get(campaign_id)
        if c is None:
            return []
        return [(copy.deepcopy(c.rows[n]), copy.deepcopy(c.states[row_id(n)]))
                for n in range(start, min(start + count, len(c.rows)))]

    async def forget(self, campaign_id: str, owner: str | None = None) -> None:
        self._campaigns.pop(campaign_id, None)
        self._every.pop(campaign_id, None)


def _due(c: _Campaign) -> float | None:
    """When a replica should next look at the campaign (None: nothing to do), as the store's live index says."""
    if c.meta["status"] == FINISHED:
        return None
    times = list(c.active.values())
    if c.meta["status"] == RUNNING and len(c.active) < int(c.meta["concurrency"]):
        times += c.ready.values()
    return min(times, default=None)
