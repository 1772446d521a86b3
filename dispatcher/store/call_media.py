"""A phone call's media record: `call:<session id>` → the replica holding the carrier's socket and
the digest of the one-time secret the call's bot presents on its media socket.

The carrier's replica writes it before it tells the bot where its media goes, and renews it while
the call lives (a lease, so a replica killed outright leaves nothing behind one lease later).
Through a load balancer the bot's media socket may reach any replica: that replica spends the
secret here, atomically (the digest is deleted by the script that matches it), so a secret opens
one media socket across every replica, and learns where the call's frames go.
"""

from __future__ import annotations

import hashlib

from dispatcher.store.client import Store

# The newest call for a session replaces any older record (a retried call names the same session).
_RECORD = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'replica', ARGV[1], 'digest', ARGV[2])
return redis.call('PEXPIRE', KEYS[1], ARGV[3])
"""
# The digest is of a 256-bit random secret: comparing digests leaks nothing usable about it.
_SPEND = """
local replica = redis.call('HGET', KEYS[1], 'replica')
if not replica or redis.call('HGET', KEYS[1], 'digest') ~= ARGV[1] then
  return false
end
redis.call('HDEL', KEYS[1], 'digest')
return replica
"""
_RENEW = """
if redis.call('HGET', KEYS[1], 'replica') == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('HGET', KEYS[1], 'replica') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class CallMediaRecords:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.lease_seconds = store.settings.lease_seconds
        redis = store.redis
        self._record = redis.register_script(_RECORD)
        self._spend = redis.register_script(_SPEND)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def _key(self, session_id: str) -> str:
        return self._store.key("call", session_id)

    def _ms(self) -> int:
        return max(1, int(self.lease_seconds * 1000))

    async def record(self, session_id: str, digest: str) -> None:
        """This replica holds the call's carrier socket; `digest` opens its bot's media socket once."""
        args: list[str | int] = [self._store.replica_id, digest, self._ms()]
        await self._store.call(lambda: self._record(keys=[self._key(session_id)], args=args))

    async def spend(self, session_id: str, digest: str) -> str | None:
        """The replica holding the call's carrier socket, if `digest` is the call's unspent secret
        (spent now, everywhere); None otherwise. Raises `StoreUnavailable`."""
        replica = await self._store.call(lambda: self._spend(keys=[self._key(session_id)], args=[digest]))
        return None if replica is None else str(replica)

    async def renew(self, session_id: str) -> bool:
        args: list[str | int] = [self._store.replica_id, self._ms()]
        return bool(await self._store.call(lambda: self._renew(keys=[self._key(session_id)], args=args)))

    async def release(self, session_id: str) -> None:
        await self._store.call(lambda: self._release(keys=[self._key(session_id)], args=[self._store.replica_id]))
