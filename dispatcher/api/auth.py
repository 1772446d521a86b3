"""Bearer-key authentication. Keys are held as SHA-256 digests and compared in constant time.

A named key (`name:key` in DISPATCHER_API_KEYS) is its name's caller: every key of one name has the
same caller id and owner key, so a name's sessions outlive the rotation of its keys. The owner
key is derived from the name and a secret of the deployment (`owner_secret`: REGION_SECRET with
regions, else BOT_CHANNEL_TOKEN), which a client never holds, so knowing a name names no session.
An unnamed key keeps the derivation from its own digest."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping

from dispatcher.api.runtime_keys import RuntimeKeys, secret_id_of
from dispatcher.api.settings_key_ids import settings_secret_id
from dispatcher.errors import ApiError
from dispatcher.sessions.ids import Caller
from dispatcher.settings import hash_api_key

LOCAL_CALLER = "local"  # the caller id when no keys are configured (loopback-only local mode)


class Authenticator:
    def __init__(self, key_hashes: frozenset[bytes], deployment_secret: str | None = None,
                 admin_key_hashes: frozenset[bytes] = frozenset(), *,
                 names: Mapping[bytes, str] | None = None, owner_secret: bytes | None = None) -> None:
        """`names`: the named keys' digests and names; `owner_secret`: what binds a name's sessions
        to it (Settings refuses named keys without one where replicas must agree)."""
        self._key_hashes = tuple(key_hashes)
        # An admin key reaches the sessions it started (a release's smoke sessions) as their caller:
        # the same routes, the same ownership rule, ids of its own that no client key can name.
        self._admin_hashes = tuple(admin_key_hashes) if key_hashes else ()
        self._admins = {key_hash: caller_of(b"admin:" + key_hash) for key_hash in self._admin_hashes}
        # Keyless local mode: one caller, whose session ids only this deployment can predict
        # (replicas sharing BOT_CHANNEL_TOKEN agree on them; without it, a new key every run).
        seed = deployment_secret.encode() if deployment_secret else secrets.token_bytes(32)
        self._local = Caller(LOCAL_CALLER, hmac.new(seed, b"voicefleet keyless owner v1", hashlib.sha256).digest())
        names = names or {}
        name_seed = owner_secret or seed
        # Each key's caller derived once, not at each request (two SHA-256 of the key's digest).
        self._by_hash = {key_hash: _named_caller(names[key_hash], name_seed) if key_hash in names
                         else caller_of(key_hash) for key_hash in self._key_hashes}
        # An admin key's campaign is placed by the worker as its creator, as a client key's is (by_id).
        self._by_id = ({c.id: c for c in [*self._by_hash.values(), *self._admins.values()]} if self._key_hashes
                       else {LOCAL_CALLER: self._local})
        self._names = {_named_caller(name, name_seed).id: name for name in names.values()}
        self._name_seed = name_seed
        # Keys an admin made at runtime (dispatcher/api/runtime_keys.py), and who is told each use.
        self.runtime: RuntimeKeys | None = None
        self.used: Callable[[str], None] = lambda name: None
        self.used_secret: Callable[[str], None] = lambda secret_id: None  # a runtime key's secret, verified
        # Keys of DISPATCHER_API_KEYS revoked at runtime, by secret id (dispatcher/api/settings_key_ids.py).
        self._settings_ids = {key_hash: settings_secret_id(key_hash) for key_hash in self._key_hashes}
        self.revoked_settings: frozenset[str] = frozenset()

    @property
    def enabled(self) -> bool:
        return bool(self._key_hashes)

    def caller(self, authorization: str | None) -> str:
        """Return a stable, non-secret id of the caller, or raise 401."""
        return self.identify(authorization).id

    def identify(self, authorization: str | None, source: str = "") -> Caller:
        """The caller (401 otherwise): its id (a digest of the key's digest) and its owner key,
        which only a holder of the key can derive: sessions belong to it. A runtime key's first check
        here costs a scrypt on this thread: a route's path takes `identify_off_loop` instead. `source`:
        the client's address, whose wrong runtime secrets are counted together (429 past a limit)."""
        if not self.enabled:
            return self._local
        token = _bearer(authorization)
        configured = self._configured(token)
        if configured is not None:
            return configured
        if self.runtime is not None and secret_id_of(token) is not None:
            return self._runtime_caller(self.runtime.verify(token, source), token)
        raise _unauthorized("invalid API key")

    async def identify_off_loop(self, authorization: str | None, source: str = "") -> Caller:
        """`identify`, a runtime key's first scrypt at this replica in a worker thread (the route's path)."""
        if not self.enabled:
            return self._local
        token = _bearer(authorization)
        configured = self._configured(token)
        if configured is not None:
            return configured
        secret_id = secret_id_of(token)
        if self.runtime is not None and secret_id is not None:
            caller = self._runtime_caller(await self.runtime.verify_off_loop(token, source), token)
            self.used_secret(secret_id)  # `keys list`'s LAST USED is each secret's, for a rotation
            return caller
        raise _unauthorized("invalid API key")

    def _configured(self, token: str) -> Caller | None:
        """The caller of a key of DISPATCHER_API_KEYS or DISPATCHER_ADMIN_KEYS, first whatever its
        shape: a configured key that happens to read `vf_<hex>_…` is still that key."""
        presented = hash_api_key(token)
        matched = admin = False
        for known in self._key_hashes:  # no early exit: time does not depend on which key matched
            matched |= hmac.compare_digest(presented, known)
        for known in self._admin_hashes:
            admin |= hmac.compare_digest(presented, known)
        if matched:
            if self._settings_ids[presented] in self.revoked_settings:
                raise revoked_key()
            caller = self._by_hash[presented]
            if caller.name is not None:
                self.used(caller.name)  # a name's use is recorded whichever key it is: the name owns its sessions
            return caller
        return self._admins[presented] if admin else None

    def _runtime_caller(self, name: str | None, token: str) -> Caller:
        if name is None:
            if self.runtime is not None and self.runtime.was_revoked(token):
                raise revoked_key()
            raise _unauthorized("invalid API key (revoked, or never made)")
        self.used(name)
        return self.named(name)

    def by_id(self, caller_id: str) -> Caller | None:
        """The caller with this (non-secret) id among this deployment's keys, with its owner key;
        None when no configured key has it (a key removed since). What a phone call's token names
        its owner by: the token carries the id, never the owner key."""
        found = self._by_id.get(caller_id)
        if found is None and self.runtime is not None:
            for name in self.runtime.names():
                if named_caller_id(name) == caller_id:
                    return self.named(name)
        return found

    def named(self, name: str) -> Caller:
        """The caller every key of `name` is (settings' or runtime's)."""
        return _named_caller(name, self._name_seed)

    def live_name(self, name: str) -> bool:
        """Whether some key of `name` still opens sessions: one of DISPATCHER_API_KEYS not revoked at
        runtime, or a runtime key (whose revoked and removed secrets are no longer among its names)."""
        if any(named == name and secret_id not in self.revoked_settings
               for secret_id, named in self.settings_secrets().items()):
            return True
        return self.runtime is not None and name in self.runtime.names()

    def settings_secrets(self) -> dict[str, str | None]:
        """Each key of DISPATCHER_API_KEYS by its secret id: its name (None: a key with no `name:`)."""
        return {self._settings_ids[h]: (self._names.get(c.id) if c.name is not None else None)
                for h, c in self._by_hash.items()}

    @property
    def settings_names(self) -> set[str]:
        """The names of DISPATCHER_API_KEYS, which no runtime key may take."""
        return set(self._names.values())

    def caller_of_hash(self, key_hash: bytes) -> str:
        """The caller id of a configured key, by its digest."""
        return self._by_hash[key_hash].id

    @property
    def names(self) -> dict[str, str]:
        """Each key name's caller id (runtime keys' too)."""
        found = {name: caller_id for caller_id, name in self._names.items()}
        for name in self.runtime.names() if self.runtime is not None else ():
            found.setdefault(name, named_caller_id(name))
        return found

    def name_of(self, caller_id: str) -> str | None:
        """The key name of a caller id (None: an unnamed key's, or no key's)."""
        found = self._names.get(caller_id)
        if found is None and self.runtime is not None:
            found = next((n for n in self.runtime.names() if named_caller_id(n) == caller_id), None)
        return found



def caller_of(key_hash: bytes) -> Caller:
    """The caller holding the key with this digest: its id and the owner key its session ids are bound to."""
    return Caller(hashlib.sha256(b"caller:" + key_hash).hexdigest()[:16], hashlib.sha256(b"owner:" + key_hash).digest())


def named_caller_id(name: str) -> str:
    """A key name's caller id: not secret, the same whichever of its keys, and after its keys are gone."""
    return hashlib.sha256(b"caller name:" + name.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=4096)  # a named key's caller, asked at each of its requests: derived once
def _named_caller(name: str, secret: bytes) -> Caller:
    owner_key = hmac.new(secret, b"voicefleet named key owner v1\x00" + name.encode(), hashlib.sha256).digest()
    return Caller(named_caller_id(name), owner_key, name=name)


def _bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("missing bearer token: send 'Authorization: Bearer <key>'")
    return token.strip()


def revoked_key() -> ApiError:
    """A key this dispatcher knows it revoked, told to its holder only (the exact key: its digest
    matched), so it says what happened, not how to configure the dispatcher."""
    return ApiError(401, "api_key_revoked", "this API key was revoked: it opens nothing here any more; ask the "
                    "deployment's admin for a live key (`voicefleet keys list` shows them, `voicefleet keys create` "
                    "makes one)", extra={})


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, extra={})
