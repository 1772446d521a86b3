"""API keys an admin creates and revokes at runtime (`voicefleet keys`), beside DISPATCHER_API_KEYS.

A secret reads `vf_<secret id>_<random>`: the id (12 hex digits, not secret) finds its record with no
scan, the random part (32 bytes) is the secret. Only a slow hash of it is stored (scrypt, a salt of
its own), so a copy of the store's record opens nothing. Paying scrypt at every request would cost
tens of milliseconds of CPU each, so a secret verified once is remembered in this replica's memory
(by its SHA-256 digest, with its id) for `CACHE_SECONDS`; the cache answers only while the id is
still in the record this replica last read, so a revoked key is refused everywhere as soon as each
replica reads the record (within about a second), the cache included. A secret id that is not in the
record is refused before any scrypt: guessing costs the guesser, not the dispatcher.

A key is a name's: every secret of one name is one caller (its sessions and share), as a named key
of DISPATCHER_API_KEYS is (dispatcher/api/auth.py). Rotation: a second secret for the name
(`keys create NAME --another`), the clients moved, the first revoked by its secret id; the name's
sessions stay its own throughout. A name of DISPATCHER_API_KEYS is never a runtime key's.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from dispatcher.errors import ApiError

PREFIX = "vf_"
ID_HEX = 12
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# scrypt's cost: 2^14 × 8 × 128 bytes = 16 MiB and ~50 ms a verification on one core (the
# interactive-login figure of the scrypt paper), paid once per secret per replica thanks to the cache.
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_BYTES = 2**14, 8, 1, 32
CACHE_SECONDS = 300.0
CACHE_ENTRIES = 10_000
# A secret id is not secret (lists and the audit trail show it): wrong secrets for one id cost a
# scrypt each, so past this many in a window this replica stops checking new ones for that id (a
# secret it verified before still answers from the cache). Bounds the CPU a guesser can make it burn.
FAILURES_PER_WINDOW, FAILURE_WINDOW_SECONDS = 20, 60.0
MAX_KEYS = 1000  # records in the one runtime record: the replicas read it every second
# A revocation reaches a replica when it reads the record; one that has not read it for this long
# (the store does not answer it) may have missed one, so it refuses every runtime key until it reads
# again (503; DISPATCHER_API_KEYS still work): a revoked key's life is bounded even there.
STALE_SECONDS = 120.0
# The threads scrypt runs in, apart from the event loop's default pool (which the store's and the
# providers' calls share): a flood of checks queues here, taking at most this many cores and this
# many times scrypt's 16 MiB, never the threads every other call needs.
SCRYPT_THREADS = 2
_SCRYPT_POOL = ThreadPoolExecutor(max_workers=SCRYPT_THREADS, thread_name_prefix="scrypt")


@dataclass(frozen=True)
class KeyRecord:
    """One secret of a runtime key as the record keeps it (never the secret)."""

    secret_id: str
    name: str
    salt: str  # hex
    digest: str  # hex scrypt of the secret
    created: float  # epoch seconds
    by: str  # the admin who created it

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "salt": self.salt, "digest": self.digest, "created": self.created, "by": self.by}

    @classmethod
    def from_json(cls, secret_id: str, raw: object) -> KeyRecord | None:
        if not isinstance(raw, dict) or not re.fullmatch(f"[0-9a-f]{{{ID_HEX}}}", secret_id):
            return None
        try:
            record = cls(secret_id, str(raw["name"]), str(raw["salt"]), str(raw["digest"]), float(raw["created"]),
                         str(raw.get("by", "")))
        except (KeyError, TypeError, ValueError):
            return None
        # An entry this code would not have written (a name no route accepts, a salt or digest that is
        # not hex of their size) opens nothing, and never turns a request into a 500.
        shaped = (NAME.fullmatch(record.name) and re.fullmatch("[0-9a-f]{32}", record.salt)
                  and re.fullmatch(f"[0-9a-f]{{{SCRYPT_BYTES * 2}}}", record.digest))
        return record if shaped else None


def slow_hash(secret: str, salt: bytes) -> str:
    return hashlib.scrypt(secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 1024 * 1024,
                          dklen=SCRYPT_BYTES).hex()


def new_secret(name: str, by: str, clock: Callable[[], float] = time.time) -> tuple[str, KeyRecord]:
    """A fresh secret for `name` (shown once) and its record."""
    secret_id = secrets.token_hex(ID_HEX // 2)
    secret = f"{PREFIX}{secret_id}_{secrets.token_urlsafe(32)}"
    salt = secrets.token_bytes(16)
    return secret, KeyRecord(secret_id, name, salt.hex(), slow_hash(secret, salt), clock(), by)


def secret_id_of(token: str) -> str | None:
    """The secret id a presented token names, or None when it is not a runtime key's shape."""
    if not token.startswith(PREFIX):
        return None
    secret_id, sep, rest = token[len(PREFIX):].partition("_")
    return secret_id if sep and rest and re.fullmatch(f"[0-9a-f]{{{ID_HEX}}}", secret_id) else None


def valid_name(name: str) -> str:
    """`name` when it can name a key, else 400 saying what a name is."""
    if not NAME.fullmatch(name):
        raise ApiError(400, "invalid_key_name", f"{name[:80]!r} is not a key name: use 1 to 63 lowercase letters, "
                       "digits and '-', starting with a letter or digit (e.g. acme-prod)", extra={})
    return name


class RuntimeKeys:
    """The runtime keys as this replica last read them, and the check of a presented secret."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._records: dict[str, KeyRecord] = {}
        self._clock = clock
        self._verified: OrderedDict[bytes, tuple[str, float]] = OrderedDict()  # digest → (secret id, until)
        self._failures: dict[str, deque[float]] = {}  # secret id → when wrong secrets were presented for it
        # Checks under way (by the token's SHA-256): the same token presented again meanwhile waits
        # for that one scrypt, and each id's checks under way count against its limit as failures do,
        # so a burst of wrong secrets sent at once costs no more scrypts than one sent in turn.
        self._checking: dict[bytes, asyncio.Future[str]] = {}
        self._checking_per_id: dict[str, int] = {}
        self._read_at: float | None = None  # when the record was last read (None: never)

    def seen(self, raw: Mapping[str, Any]) -> None:
        """The record's keys as read now: a secret no longer there is forgotten here (its cache too)."""
        records = {}
        for secret_id, value in raw.items():
            record = KeyRecord.from_json(secret_id, value)
            if record is not None:
                records[secret_id] = record
        self._records = records
        for digest, (secret_id, _) in list(self._verified.items()):
            if secret_id not in records:
                del self._verified[digest]
        self._failures = {i: times for i, times in self._failures.items() if i in records}
        self.fresh()

    def fresh(self) -> None:
        """The record was read just now (the same as before, maybe): the keys are current."""
        self._read_at = self._clock()

    @property
    def records(self) -> dict[str, KeyRecord]:
        return dict(self._records)

    def names(self) -> set[str]:
        return {record.name for record in self._records.values()}

    def verify(self, token: str) -> str | None:
        """The key name `token` is a live secret of, or None (scrypt on this thread when not cached)."""
        record, name = self._looked_up(token)
        if record is None or name is not None:
            return name
        return self._checked(token, record, slow_hash(token, bytes.fromhex(record.salt)))

    async def verify_off_loop(self, token: str) -> str | None:
        """`verify`, its scrypt (when not cached) in a worker thread of its own pool: the event loop
        serves other requests meanwhile. The record is read again after it: a revocation meanwhile wins."""
        key = hashlib.sha256(token.encode()).digest()
        record, name = self._looked_up(token, joining=key in self._checking)
        if record is None or name is not None:
            return name
        checking = self._checking.get(key)
        if checking is None:
            checking = asyncio.get_running_loop().run_in_executor(_SCRYPT_POOL, slow_hash, token,
                                                                  bytes.fromhex(record.salt))
            self._started(key, record, checking)
        digest = await asyncio.shield(checking)  # a caller gone does not cancel the others' check
        if self._records.get(record.secret_id) != record:
            return None
        return self._checked(token, record, digest, failure_counted=True)

    def _started(self, key: bytes, record: KeyRecord, checking: asyncio.Future[str]) -> None:
        secret_id = record.secret_id
        self._checking[key] = checking
        self._checking_per_id[secret_id] = self._checking_per_id.get(secret_id, 0) + 1

        def done(finished: asyncio.Future[str]) -> None:
            # The check under way becomes a failure in the same step: no moment where it counts as neither.
            if finished.cancelled() or finished.exception() is not None or \
                    not hmac.compare_digest(finished.result(), record.digest):
                self._failures.setdefault(secret_id, deque()).append(self._clock())
            self._checking.pop(key, None)
            left = self._checking_per_id.get(secret_id, 1) - 1
            if left > 0:
                self._checking_per_id[secret_id] = left
            else:
                self._checking_per_id.pop(secret_id, None)

        checking.add_done_callback(done)

    def _looked_up(self, token: str, *, joining: bool = False) -> tuple[KeyRecord | None, str | None]:
        """The token's record (None: no such id, refused with no scrypt paid for a guess) and its name
        when the secret was verified here within CACHE_SECONDS. `joining`: the same token is being
        checked already (no new scrypt, so no new count against the id's limit)."""
        secret_id = secret_id_of(token)
        record = self._records.get(secret_id) if secret_id is not None else None
        if record is None:
            return None, None
        if self._read_at is None or self._clock() - self._read_at > STALE_SECONDS:
            raise ApiError(503, "store_unavailable", "runtime API keys cannot be checked: this replica has not "
                           "read them from the store for a while, so a revocation may not have reached it; try "
                           "again shortly (a key of DISPATCHER_API_KEYS still works)", retry_after=5.0)
        cached = self._verified.get(hashlib.sha256(token.encode()).digest())
        if cached is not None and cached[0] == record.secret_id and cached[1] > self._clock():
            return record, record.name
        failures = self._failures.get(record.secret_id)
        while failures and failures[0] < self._clock() - FAILURE_WINDOW_SECONDS:
            failures.popleft()
        tried = len(failures or ()) + self._checking_per_id.get(record.secret_id, 0)
        if not joining and tried >= FAILURES_PER_WINDOW:
            return None, None  # refused unchecked until the window moves on
        return record, None

    def _checked(self, token: str, record: KeyRecord, digest: str, *, failure_counted: bool = False) -> str | None:
        if not hmac.compare_digest(digest, record.digest):
            if not failure_counted:
                self._failures.setdefault(record.secret_id, deque()).append(self._clock())
            return None
        key = hashlib.sha256(token.encode()).digest()
        self._verified[key] = (record.secret_id, self._clock() + CACHE_SECONDS)
        self._verified.move_to_end(key)
        while len(self._verified) > CACHE_ENTRIES:
            self._verified.popitem(last=False)
        return record.name
