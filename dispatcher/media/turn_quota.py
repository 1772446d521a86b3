"""How many TURN credentials one API key holds at once: a bound per key, so one key cannot crowd
the managed relay's allocations out from under every other key.

A client's TURN credential lets whoever holds it make allocations on the relay (up to the
relay's `user-quota` per credential) until it expires, and coturn offers no way to take one back
(`DELETE /sessions/{id}` ends the session, not the credential: with `use-auth-secret` there is
nothing to revoke, and a refresh is authenticated with the key derived at allocation, so an
allocation outlives its credential while its holder refreshes it; docs/security.md). So a key's
credentials count until they expire, whether their sessions ended or not, and a start that would
take a key past `TURN_CREDENTIALS_PER_KEY` is refused with 429 before any machine is launched.

The count is the coordination's (`CredentialCounts`, dispatcher/store/coordination.py): kept in
this process's memory (callers are few: one per API key), or, with several replicas, in their
store (a sorted set per key, scored by expiry, so every replica counts the same credentials), and
in the replica's own memory when the store does not answer.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from dispatcher.errors import ApiError
from dispatcher.store.coordination import CredentialCounts


class TurnQuota:
    """`take(caller)` counts one more credential for the caller, or raises the 429 saying when
    one of its credentials expires; `give_back` uncounts one that was never handed out."""

    def __init__(self, per_key: int, lifetime_seconds: int, counts: CredentialCounts, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.per_key = per_key
        self._lifetime = lifetime_seconds
        self._clock = clock
        self._counts = counts

    async def take(self, caller: str) -> str:
        """A handle for `give_back`; raises ApiError 429 when the caller holds `per_key` already."""
        now = self._clock()
        handle = secrets.token_hex()  # a member of the key's set at every replica: unique
        wait = await self._counts.take(caller, handle, now, now + self._lifetime, self.per_key)
        if wait > 0:
            raise ApiError(
                429, "turn_credentials_exhausted",
                f"this API key holds {self.per_key} TURN credentials that have not expired "
                f"(TURN_CREDENTIALS_PER_KEY); ending a session does not return its credential",
                retry_after=wait,
            )
        return handle

    async def give_back(self, caller: str, handle: str) -> None:
        """The start failed before its credential was handed out: it does not count."""
        await self._counts.give_back(caller, handle)
