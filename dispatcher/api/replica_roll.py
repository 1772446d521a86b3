"""The replicas `status` has seen, so one that stops answering is named rather than silently left out.

Each replica is seen in the store's list of live replicas (its heartbeat's lease) or in the reserve
pool; one seen before and gone now is reported as not answering, with when it was last seen, for
`FORGET_SECONDS`. A replica that drained first said so (`draining`) before it left: it left, it is
not missing. The roll is this replica's memory: a replica restarted since knows only what it saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

FORGET_SECONDS = 3600.0  # a replica gone this long is no longer named (scaled in, or long replaced)


class ReplicaRoll:
    def __init__(self) -> None:
        self._seen: dict[str, float] = {}  # replica id → when it was last seen (epoch seconds)
        self._draining: set[str] = set()

    def missing(self, present: Iterable[str], states: Mapping[str, str], now: float) -> list[dict[str, Any]]:
        """Those seen before that are not `present` now (nor drained away), each with `last_seen`."""
        here = set(present) | set(states)
        self._draining = (self._draining | {r for r, state in states.items() if state == "draining"}) - \
            {r for r, state in states.items() if state != "draining"}
        for replica in here:
            self._seen[replica] = now
        gone = {r: at for r, at in self._seen.items() if r not in here}
        for replica, at in gone.items():
            if replica in self._draining or now - at > FORGET_SECONDS:
                del self._seen[replica]
                self._draining.discard(replica)
        return [{"id": r, "last_seen": round(at, 3)} for r, at in sorted(self._seen.items()) if r not in here]
