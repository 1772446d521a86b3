"""What the dispatcher knows of each session's Cerebrium run, kept in the coordination store.

Cerebrium documents no API to read or cancel a run (docs/providers.md), so the provider cannot be
the source of truth here, as it is for every other provider. A run is known by two records every
replica reads: the launch's claim (`FirstClaims`: the first launch of a session wins at every
replica, so a replayed or concurrent start never calls the function twice) and the run's record
(sealed session values under `cerebrium:<session id>`): its run id, when it was launched, and what
the bot's channel said since (connected, dropped, ended, with why). The replica that holds the bot's
channel writes what it sees; one process keeps both in memory (LocalCoordination).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from dispatcher.store.coordination import FirstClaims, SessionValues

PREFIX = "cerebrium:"


@dataclass(frozen=True)
class Run:
    created_at: float
    body_digest: str
    transport: str | None = None
    release: str | None = None  # the session's release, whose app the call went to (None: a record older than releases)
    run_id: str | None = None  # Cerebrium's, once the call was accepted (202)
    connected_at: float | None = None  # the bot's first hello with this session
    dropped_at: float | None = None  # its channel closed without an `ended` report
    ended: str | None = None  # "ended" or "failed": final
    detail: str | None = None  # why it ended or failed

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> Run | None:
        if not raw:
            return None
        try:
            return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})
        except TypeError:
            return None


class Runs:
    def __init__(self, claims: FirstClaims, values: SessionValues, keep_seconds: float) -> None:
        self._claims, self._values, self._keep = claims, values, keep_seconds

    async def claim(self, session_id: str, run: Run) -> Run | None:
        """Record `run` as the session's unless a launch got there first: then that one's run."""
        mine = json.dumps({**asdict(run), "nonce": time.time_ns()})
        first = await self._claims.first(PREFIX + session_id, mine, self._keep)
        if first == mine:
            await self.put(session_id, run)
            return None
        return await self.get(session_id) or Run.from_json(json.loads(first))

    async def get(self, session_id: str) -> Run | None:
        return Run.from_json(await self._values.get(PREFIX + session_id))

    async def put(self, session_id: str, run: Run) -> None:
        await self._values.put(PREFIX + session_id, asdict(run), self._keep)

    async def update(self, session_id: str, **changes: Any) -> Run | None:
        """Change a known run's record; a final one (`ended`) stays as it is."""
        run = await self.get(session_id)
        if run is None or run.ended is not None:
            return run
        run = replace(run, **changes)
        await self.put(session_id, run)
        return run
