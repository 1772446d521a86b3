"""Where a cold session's values wait for its bot: this replica's memory, or the replicas' store, sealed.

A cold bot's launch environment holds no session secret (dispatcher/machines/bot_environment.py):
its `assign` (the Daily token, its TURN credentials, the caller's `body` with a dial-in call's
credential) waits here from the launch until the bot has taken it over its channel, and no longer.

With one replica the values stay in this process (`MemoryVault`; also where they wait when the
store does not answer: dispatcher/store/forgiving.py). With several (`REDIS_URL`), the
bot's hello may reach any replica, and that one must be able to send them: they are written to
the store (`StoreVault`) rather than re-derived there, because the caller's `body` cannot be
derived, and a Daily token or TURN credential derived twice would be two secrets alive instead of
one. In the store they are sealed (AES-GCM, a key derived from the deployment secret that only
the replicas hold, the session id bound in as associated data, so one session's record cannot
be replayed as another's) and expire on their own: reading the store, or a backup of it, yields
nothing usable.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dispatcher.store.client import Store
from dispatcher.store.together import together

log = logging.getLogger("dispatcher.store.secrets_vault")

NONCE_BYTES = 12  # AES-GCM's standard nonce; random per record (a record is written once or twice)
MAX_KEPT = 10_000  # sessions waiting for their bot in one replica's memory at once


class MemoryVault:
    """One replica: the values live in this process until taken, deleted or expired."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_kept: int = MAX_KEPT) -> None:
        self._clock = clock
        self._max_kept = max_kept
        self._kept: dict[str, tuple[float, dict[str, Any]]] = {}
        # When each put runs out, soonest first: a put drops what has expired without a pass over
        # every session waiting (thousands in a burst). An entry put again or taken since is stale
        # here and skipped; the heap is rebuilt when stale entries outnumber the live ones.
        self._expiries: list[tuple[float, str]] = []

    async def put(self, session_id: str, values: Mapping[str, Any], ttl_seconds: float) -> None:
        now = self._clock()
        while self._expiries and self._expiries[0][0] <= now:
            expires, old = heapq.heappop(self._expiries)
            kept = self._kept.get(old)
            if kept is not None and kept[0] == expires:
                del self._kept[old]
        if len(self._kept) >= self._max_kept and session_id not in self._kept:
            raise VaultFull(f"{self._max_kept} sessions already wait for their bot")
        self._kept[session_id] = (now + ttl_seconds, dict(values))
        heapq.heappush(self._expiries, (now + ttl_seconds, session_id))
        if len(self._expiries) > 2 * len(self._kept) + 64:
            self._expiries = [(expires, kept_id) for kept_id, (expires, _) in self._kept.items()]
            heapq.heapify(self._expiries)

    async def get(self, session_id: str) -> dict[str, Any] | None:
        kept = self._kept.get(session_id)
        if kept is None or kept[0] <= self._clock():
            return None
        return dict(kept[1])

    async def read(self, session_id: str) -> dict[str, Any] | None:
        return await self.get(session_id)

    async def delete(self, session_id: str) -> None:
        self._kept.pop(session_id, None)


class VaultFull(Exception):
    """More sessions wait for their bots than one replica keeps values for."""


class StoreVault:
    """Several replicas: the values sealed in the store, under `secrets:<session id>`, with a TTL."""

    def __init__(self, store: Store, key: bytes) -> None:
        self._store = store
        self._aead = AESGCM(key)

    def _key(self, session_id: str) -> str:
        return self._store.key("secrets", session_id)

    async def put(self, session_id: str, values: Mapping[str, Any], ttl_seconds: float) -> None:
        sealed = seal(self._aead, session_id, values)
        ms = max(1, int(ttl_seconds * 1000))
        # With the start's writes of the same moment (its `requested` event, its index entry): one trip.
        await together(self._store).set_px(self._key(session_id), sealed, ms)

    async def get(self, session_id: str) -> dict[str, Any] | None:
        sealed = await self._store.call(lambda: self._store.redis.get(self._key(session_id)))
        return None if sealed is None else unseal(self._aead, session_id, sealed)

    async def delete(self, session_id: str) -> None:
        await self._store.call(lambda: self._store.redis.delete(self._key(session_id)))


def seal(aead: AESGCM, session_id: str, values: Mapping[str, Any]) -> str:
    nonce = os.urandom(NONCE_BYTES)
    plain = json.dumps(dict(values), separators=(",", ":")).encode()
    return base64.b64encode(nonce + aead.encrypt(nonce, plain, session_id.encode())).decode()


def unseal(aead: AESGCM, session_id: str, sealed: str | bytes) -> dict[str, Any] | None:
    """The record's values; None (logged) for one that was not sealed for this session with this key."""
    try:
        raw = base64.b64decode(sealed, validate=True)
        plain = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], session_id.encode())
        values = json.loads(plain)
    except (binascii.Error, ValueError, InvalidTag):
        log.warning("session %s: its sealed values do not open with this deployment's key; ignored", session_id)
        return None
    return values if isinstance(values, dict) else None
