"""`Idempotency-Key` on `POST /campaigns` and `POST /campaigns/{id}/rows`, as `POST /calls` honours it: the
same key's request again (a client's retry after a timeout) is answered with what the first made, never a
second campaign or its rows added twice. Recorded once across the replicas (the store's `SET NX`), per API
key, for as long as a campaign's records are kept; a request that fails lets its record go, so its retry
runs again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dispatcher.api.state import AppState
from dispatcher.errors import ApiError
from dispatcher.sessions.ids import Caller
from dispatcher.store.campaign_book import KEEP_SECONDS
from dispatcher.store.memory import ClaimsFull


@asynccontextmanager
async def first_or_earlier(state: AppState, who: Caller, what: str, value: str) -> AsyncIterator[str]:
    """The value first recorded for `what` (this key's): `value` when this request is the first (its record
    let go if the body raises), else the earlier request's."""
    holders = state.replication.coordination.key_holders
    record = f"campaign-replay:{who.id}:{what}"
    try:
        earlier = await holders.first(record, value, KEEP_SECONDS)
    except ClaimsFull:
        raise ApiError(503, "idempotency_keys_full", "this dispatcher holds as many Idempotency-Keys' records as "
                       "it may (it runs without a store): retry later, or without the header", retry_after=60) from None
    if earlier != value:
        yield earlier
        return
    try:
        yield value
    except BaseException:
        await holders.let_go(record, value)
        raise
