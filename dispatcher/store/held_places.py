"""Places held under the session cap for sessions that have not started yet, for the whole region.

A call another region hands here is minted a one-time stream token, and its session starts only
when the carrier connects: until then (for seconds at most: dispatcher/api/call_handoff.py) the
token holds a place, so the region cannot mint more calls than it has room for. Every replica
mints, so the places are counted where the API keys' sessions are (dispatcher/store/key_sessions.py):
one record per token in the set of one reserved caller, checked and taken in one store script.
The store alone decides: one that does not answer raises `StoreUnavailable`, and the hand-off is
refused (the asking region answers the call itself) rather than minted on one
replica's count. One process keeps the same records in its memory. docs/regions.md.
"""

from __future__ import annotations

from typing import Protocol

from dispatcher.store.key_sessions import Held

HANDED_CALLS = "handed-calls"  # never a caller id (those are digests)


class Records(Protocol):
    """`LocalKeySessions` or `SharedKeySessions` (never the forgiving pair: no replica decides alone)."""

    async def hold(self, caller: str, session_id: str, share: int, seconds: float) -> Held | None: ...

    async def release(self, caller: str, session_ids: list[str]) -> None: ...


class HeldPlaceRecords:
    def __init__(self, records: Records) -> None:
        self._records = records

    async def hold(self, place: str, room: int, seconds: float) -> bool:
        return room > 0 and await self._records.hold(HANDED_CALLS, place, room, seconds) is None

    async def release(self, place: str) -> None:
        await self._records.release(HANDED_CALLS, [place])

    async def held(self) -> int:
        # A share of none holds nothing and answers every record still running (the records' own
        # script, so the store's user needs no other grant).
        return len(await self._records.hold(HANDED_CALLS, "", 0, 1.0) or {})
