"""The region that relayed a call's start here, recorded with its session, whose signed word on the call's SIP
edge (`EDGE_VOUCHED`: dispatcher/api/edge_line.py) is believed from it alone.

Each region's edges have credentials of their own SIP_EDGE_SECRET, so a call spilled here from the region its
edge reached is vouched for by that region: its edge's count of the call's minutes, its bridged leg, its warm
transfer's steps. Only that region recorded the edge, so only its word counts: `relayed-by:<session>` in the
store, written first-wins when the call's token is minted here, lasting the call's longest life (a bridged
leg's, and a margin). A store that does not answer never refuses the start: the record is owed, written once
it answers (`OwedEdgeRecords`). A session started here directly, or before this record was kept, has none, and
no region's word is believed for it. docs/regions.md ("Spill-over").
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry

from dispatcher.errors import ApiError
from dispatcher.phone.edge_record import INBOUND, edge_of
from dispatcher.phone.owed_edge_records import Kind, OwedEdgeRecords
from dispatcher.store.coordination import FirstClaims
from dispatcher.store.first_read_back import first_read_back
from dispatcher.store.memory import ClaimsFull
from dispatcher.store.unavailable import StoreUnavailable

RECORD = "relayed-by:"  # + session id


def record_key(session_id: str) -> str:
    return RECORD + session_id


# Valued `<region> inbound`, an inbound edge record's shape: owed and read back as one (no hand-over's token).
RELAYED = Kind(record_key, "voicefleet_relayed_start_records_owed", "relayed start's record")


class RelayedStarts:
    def __init__(self, records: FirstClaims, seconds: float, registry: CollectorRegistry | None = None) -> None:
        """`records`: the store's first claims, shared by every replica; `seconds`: how long a record lasts."""
        self._records = records
        self._seconds = seconds
        self.owed = OwedEdgeRecords(records, registry=registry, kind=RELAYED)  # `run` by the app's lifespan

    async def took(self, session_id: str, region: str) -> None:
        """Records `region` as the one that relayed `session_id`'s start here; never refused (owed instead)."""
        mine = f"{region} {INBOUND}"
        try:
            await first_read_back(self._records, record_key(session_id), mine, self._seconds)
        except ClaimsFull:  # this replica's memory is full of records: the call goes on, vouched by no region
            pass
        except StoreUnavailable:
            self.owed.owe(session_id, region, mine, self._seconds)

    async def forget(self, session_id: str, region: str) -> None:
        """A start refused after `took`: its record let go, so refused starts never fill the store or the owed."""
        mine = f"{region} {INBOUND}"
        self.owed.forget(session_id, mine)
        with contextlib.suppress(StoreUnavailable):
            await self._records.let_go(record_key(session_id), mine)

    async def relayer(self, session_id: str) -> str | None:
        """The region recorded as relaying `session_id`'s start here; None for a session without a record (started
        here, or before records were kept). 503 with Retry-After while the store does not answer."""
        if self.owed.owed(session_id) is not None:
            return await self.owed.settle(session_id)
        try:
            value = await self._records.held(record_key(session_id))
        except StoreUnavailable:
            raise ApiError(503, "store_unavailable", "the replicas' store did not answer, so the region that relayed "
                           f"session {session_id}'s start is not known: nothing was kept, send it again",
                           retry_after=1.0) from None
        return edge_of(value) if value is not None else None
