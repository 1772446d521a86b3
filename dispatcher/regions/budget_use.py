"""What the other regions last said each budgeted key used there, added to this region's own at a
start's budget check, so a budget holds for the whole deployment (docs/operations.md, "Budgets").

Each region's `/regions/state` answer carries its own use under `budget_use`, per key and ledger
field (`sessions`, `minutes:day:2026-11-28`, `dollars:month:2026-11`), read by every peer twice a
second with the rest of its state: a start asks no region anything. A period's figure names its
period, so it counts until that period ends however long its region has been silent (minutes used
are used); the sessions a region holds at once count for `LIVE_KEEP_SECONDS` after its last answer.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dispatcher.regions.peers import Peer, Peers

FIELD = "budget_use"  # in a region's state answer
LIVE = "sessions"  # the one figure that is not a period's sum: the key's sessions open there now
MAX_KEYS = 500  # keys a region tells its peers (those nearest a budget first): ~60 bytes each
LIVE_KEEP_SECONDS = 60.0  # a silent region's sessions at once still count this long after its last answer
KEY_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")  # as a budget's key name (dispatcher/sessions/budgets.py)
FIELD_NAME = re.compile(r"^(sessions|(minutes|dollars):(day|month):[0-9]{4}-[0-9]{2}(-[0-9]{2})?)$")

Figures = dict[str, dict[str, float]]  # key → ledger field → what it used


def parsed(data: object) -> Figures:
    """A peer's `budget_use`, what of it has the right shape (a peer of an earlier release sends none)."""
    found: Figures = {}
    if not isinstance(data, Mapping):
        return found
    for key, fields in list(data.items())[:MAX_KEYS]:
        if not isinstance(key, str) or not KEY_NAME.fullmatch(key) or not isinstance(fields, Mapping):
            continue
        found[key] = {name: float(value) for name, value in list(fields.items())[:8]
                      if isinstance(name, str) and FIELD_NAME.fullmatch(name) and isinstance(value, int | float)
                      and not isinstance(value, bool) and math.isfinite(value) and value >= 0}
    return found


@dataclass
class Told:
    figures: Figures = field(default_factory=dict)
    at: float = -math.inf  # when it answered (this process's monotonic clock)


class PeerBudgetUse:
    """Every peer's last-told use, summed for a key's field; which region tells a key's webhooks."""

    def __init__(self, peers: Peers, clock: Callable[[], float] = time.monotonic) -> None:
        self._peers, self._clock = peers, clock
        self._told: dict[str, Told] = {}
        peers.answer_listeners.append(self.polled)

    async def polled(self, peer: Peer, answer: Mapping[str, Any]) -> None:
        if FIELD not in answer:  # a replica there that has not read its ledger yet: what it told before stands
            return
        self._told[peer.name] = Told(parsed(answer.get(FIELD)), self._clock())

    def used(self, key: str, ledger_field: str) -> float:
        """What `key` used of `ledger_field` in the other regions, as each last told it."""
        now = self._clock()
        return sum(told.figures.get(key, {}).get(ledger_field, 0.0) for told in self._told.values()
                   if ledger_field != LIVE or now - told.at <= LIVE_KEEP_SECONDS)

    def tells(self, key: str) -> bool:
        """Whether this region pushes `key`'s budget webhooks: the first by rendezvous hashing of the
        key's name among the regions that answer now, so every region that sees them all picks one."""
        here = self._peers.regions.here
        live = [here, *(peer.name for peer in self._peers.by_name.values() if peer.reachable)]
        return max(live, key=lambda name: hashlib.sha256(f"{name}\0{key}".encode()).digest()) == here
