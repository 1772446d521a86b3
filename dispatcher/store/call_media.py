"""A phone call's media record: `call:<session id>` → the replica holding the carrier's socket and
the digest of the one-time secret the call's bot presents on its media socket.

The digest is an HMAC keyed from `REDIS_MESSAGE_SECRET` (which only the replicas hold) over the
session id and the secret, never a bare hash: a store writer who replaced a bare sha256 with the
hash of a secret of its own could present that secret at an honest replica, which would then relay
the call's frames to it, its caller's voice included. Without the key, nothing a store writer puts
there opens a media socket, and a digest copied from another call does not match this one.

The carrier's replica writes it before it tells the bot where its media goes and renews it while the
call lives (a lease; one that ran out while the store was unreachable is written again, without the
spent digest). It also says where a transfer of the call goes (dispatcher/phone/transfer_anywhere.py).

Through a load balancer the bot's media socket may reach any replica: that replica spends the
secret here, atomically (the digest is deleted by the script that matches it), so a secret opens
one media socket across every replica, and learns where the call's frames go.

While `REDIS_MESSAGE_SECRET` is changed (three deploys, docs/pulumi.md), the carrier's replica may
write the digest under one secret and the bot's media socket reach a replica sealing with the other.
`spend` therefore matches a digest made under any secret this replica opens messages with (its own
and `REDIS_ACCEPTED_MESSAGE_SECRET`, as dispatcher/store/message_seal.py does): a forger still needs
one of the replicas' secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from dispatcher.store.client import Store

log = logging.getLogger("dispatcher.store.call_media")

# The newest call for a session replaces any older record (a retried call names the same session).
_RECORD = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'replica', ARGV[1], 'digest', ARGV[2])
return redis.call('PEXPIRE', KEYS[1], ARGV[3])
"""
# The digest is a MAC of a 256-bit random secret: comparing digests leaks nothing usable about it.
# ARGV: the digest under each key this replica opens with (one, or two during a change of secret);
# no replica sends more, and a long list, refused here, would keep the store busy for every replica.
_SPEND = """
if #ARGV > 2 then
  return redis.error_reply('at most 2 digests a spend')
end
local replica = redis.call('HGET', KEYS[1], 'replica')
local digest = redis.call('HGET', KEYS[1], 'digest')
if not replica or not digest then
  return false
end
for _, candidate in ipairs(ARGV) do
  if digest == candidate then
    redis.call('HDEL', KEYS[1], 'digest')
    return replica
  end
end
return false
"""
# A record that ran out (the store out of reach for longer than a lease) is written again, naming this
# replica alone: the digest is one-time and may have been spent meanwhile. A record naming another
# replica (a newer call of the session) is left alone. 2: re-created, 1: renewed, 0: not this replica's.
_RENEW = """
local replica = redis.call('HGET', KEYS[1], 'replica')
if replica == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if replica then
  return 0
end
redis.call('HSET', KEYS[1], 'replica', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 2
"""
_RECREATED = 2

_RELEASE = """
if redis.call('HGET', KEYS[1], 'replica') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


_DIGEST_USE = b"voicefleet call media secrets v1"  # a key of its own: no other MAC of the replicas' matches


def media_key(message_secret: str) -> bytes:
    return hmac.new(message_secret.encode(), _DIGEST_USE, hashlib.sha256).digest()


def secret_digest(key: bytes, session_id: str, secret: str) -> str:
    """What the store keeps of a call's media secret: only a holder of `key` makes one that matches."""
    name = session_id.encode()  # its length first: no split of id and secret reads as another
    return hmac.new(key, b"%d:" % len(name) + name + secret.encode(), hashlib.sha256).hexdigest()


class CallMediaRecords:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.lease_seconds = store.settings.lease_seconds
        self._digest_key = media_key(store.settings.message_secret)
        accepted = store.settings.accepted_message_secret
        self._opening_keys = (self._digest_key, *((media_key(accepted),) if accepted else ()))
        redis = store.redis
        self._record = redis.register_script(_RECORD)
        self._spend = redis.register_script(_SPEND)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def _key(self, session_id: str) -> str:
        return self._store.key("call", session_id)

    def _ms(self) -> int:
        return max(1, int(self.lease_seconds * 1000))

    async def record(self, session_id: str, secret: str) -> None:
        """This replica holds the call's carrier socket; `secret` opens its bot's media socket once."""
        digest = secret_digest(self._digest_key, session_id, secret)
        args: list[str | int] = [self._store.replica_id, digest, self._ms()]
        await self._store.call(lambda: self._record(keys=[self._key(session_id)], args=args))

    async def spend(self, session_id: str, secret: str) -> str | None:
        """The replica holding the call's carrier socket, if `secret` is the call's unspent secret
        (spent now, everywhere); None otherwise. Raises `StoreUnavailable`."""
        digests: list[str | int] = [secret_digest(key, session_id, secret) for key in self._opening_keys]
        replica = await self._store.call(lambda: self._spend(keys=[self._key(session_id)], args=digests))
        return None if replica is None else str(replica)

    async def replica_of(self, session_id: str) -> str | None:
        """The replica holding the call's carrier socket while its record lasts (a transfer goes there);
        None when no call is recorded. Raises `StoreUnavailable`."""
        replica = await self._store.call(lambda: self._store.redis.hget(self._key(session_id), "replica"))
        return None if replica is None else str(replica)

    async def renew(self, session_id: str) -> bool:
        """True while the record names this replica, re-created if it had run out; False when it names
        another replica. Raises `StoreUnavailable`."""
        args: list[str | int] = [self._store.replica_id, self._ms()]
        renewed = await self._store.call(lambda: self._renew(keys=[self._key(session_id)], args=args))
        if renewed == _RECREATED:
            log.warning("phone call %s's media record had run out (the store out of reach for a lease?): "
                        "written again, so other replicas find the call", session_id)
        return bool(renewed)

    async def release(self, session_id: str) -> None:
        await self._store.call(lambda: self._release(keys=[self._key(session_id)], args=[self._store.replica_id]))
