"""API keys an admin creates and revokes at runtime (`voicefleet keys`), beside DISPATCHER_API_KEYS.

A secret reads `vf_<secret id>_<random>`: the id (12 hex digits, not secret) finds its record with no
scan, the random part (32 bytes) is the secret. Only a slow hash of it is stored (scrypt, a salt of
its own), so a copy of the store's record opens nothing. Paying scrypt at every request would cost
tens of milliseconds of CPU each, so a secret verified once is remembered in this replica's memory
(by its SHA-256 digest, with its id) for `CACHE_SECONDS`; the cache answers only while the id is
still in the record this replica last read, so a revoked key is refused everywhere as soon as each
replica reads the record (within about a second), the cache included. A secret id that is not in the
record is refused before any scrypt: guessing costs the guesser, not the dispatcher.

The id is public (lists, the audit trail, the secret's own prefix), so wrong secrets are counted per
id and client, and per id across addresses; the record keeps a 24-bit check of each secret, so a
guess it rules out costs no scrypt and the real secret, which passes it, is never held back by random
guessing. A token that passes the check but is not cached costs a scrypt: those meet a small per-id
budget and caps on scrypts under way (429, never queued): dispatcher/api/wrong_secrets.py keeps those
limits. docs/security.md says what a guesser meets.

A key is a name's: every secret of one name is one caller (its sessions and share), as a named key
of DISPATCHER_API_KEYS is (dispatcher/api/auth.py). Rotation: a second secret for the name
(`keys create NAME --another`), the clients moved, the first revoked by its secret id; the name's
sessions stay its own throughout. A name of DISPATCHER_API_KEYS is never a runtime key's.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from dispatcher.api.guess_limits import WindowCounts, client_group
from dispatcher.api.wrong_secrets import (  # the limits' figures, named here as they always were
    FAILURE_WINDOW_SECONDS,  # noqa: F401
    FAILURES_PER_ID_PER_WINDOW,  # noqa: F401
    FAILURES_PER_WINDOW,  # noqa: F401
    REVOKED_SCRYPTS_PER_WINDOW,  # noqa: F401
    SCRYPT_FAILURES_PER_ID,  # noqa: F401
    SCRYPTS_IN_FLIGHT,  # noqa: F401
    SCRYPTS_PER_ID,  # noqa: F401
    WARNINGS_PER_WINDOW,  # noqa: F401
    WrongSecretLimits,
)
from dispatcher.errors import ApiError

log = logging.getLogger(__name__)
PREFIX = "vf_"
ID_HEX = 12
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# scrypt's cost: 2^14 × 8 × 128 bytes = 16 MiB and ~50 ms a verification on one core (the
# interactive-login figure of the scrypt paper), paid once per secret per replica thanks to the cache.
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_BYTES = 2**14, 8, 1, 32
CACHE_SECONDS = 300.0
CACHE_ENTRIES = 10_000
CHECK_HEX = 6  # the record's quick check of a secret: 24 bits
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
    check: str = ""  # hex: the first 24 bits of quick_check(secret) ("": a record made before it)

    def to_json(self) -> dict[str, Any]:
        shown = {"name": self.name, "salt": self.salt, "digest": self.digest, "created": self.created, "by": self.by}
        return {**shown, "check": self.check} if self.check else shown

    def passes(self, token: str) -> bool:
        """Whether `token` may be this secret (True for every token where the record has no check)."""
        return not self.check or hmac.compare_digest(quick_check(token), self.check)

    @classmethod
    def from_json(cls, secret_id: str, raw: object) -> KeyRecord | None:
        if not isinstance(raw, dict) or not re.fullmatch(f"[0-9a-f]{{{ID_HEX}}}", secret_id):
            return None
        try:
            record = cls(secret_id, str(raw["name"]), str(raw["salt"]), str(raw["digest"]), float(raw["created"]),
                         str(raw.get("by", "")), str(raw.get("check", "")))
        except (KeyError, TypeError, ValueError):
            return None
        # An entry this code would not have written (a name no route accepts, a salt or digest that is
        # not hex of their size) opens nothing, and never turns a request into a 500.
        shaped = (NAME.fullmatch(record.name) and re.fullmatch("[0-9a-f]{32}", record.salt)
                  and re.fullmatch(f"[0-9a-f]{{{SCRYPT_BYTES * 2}}}", record.digest)
                  and re.fullmatch(f"(?:[0-9a-f]{{{CHECK_HEX}}})?", record.check))
        return record if shaped else None


def slow_hash(secret: str, salt: bytes) -> str:
    return hashlib.scrypt(secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 1024 * 1024,
                          dklen=SCRYPT_BYTES).hex()


def quick_check(token: str) -> str:
    """A cheap, short check of a secret: a guess fails it without a scrypt, the real secret passes."""
    return hashlib.sha256(b"voicefleet runtime key check v1:" + token.encode()).hexdigest()[:CHECK_HEX]


def new_secret(name: str, by: str, clock: Callable[[], float] = time.time) -> tuple[str, KeyRecord]:
    """A fresh secret for `name` (shown once) and its record."""
    secret_id = secrets.token_hex(ID_HEX // 2)
    secret = f"{PREFIX}{secret_id}_{secrets.token_urlsafe(32)}"
    salt = secrets.token_bytes(16)
    return secret, KeyRecord(secret_id, name, salt.hex(), slow_hash(secret, salt), clock(), by, quick_check(secret))


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
        self._names: frozenset[str] = frozenset()  # the records' names, as of the last read: asked per start
        self._clock = clock
        self._verified: OrderedDict[bytes, tuple[str, float]] = OrderedDict()  # digest → (secret id, until)
        # Wrong secrets counted and the scrypts under way: a guesser's limits (429 past them).
        self._guesses = WrongSecretLimits(CACHE_ENTRIES, clock, log)
        # The check a record made before checks existed would hold, learnt here when its secret verified:
        # secret id → (the record's digest, check).
        self._learnt: dict[str, tuple[str, str]] = {}
        self._read_at: float | None = None  # when the record was last read (None: never)
        # The digests of secrets known here to be revoked: verified here before their revocation, or
        # checked since against a revoked record's slow hash. That exact secret is told it was revoked
        # (a guess is told nothing more).
        self._revoked: OrderedDict[bytes, None] = OrderedDict()
        # The revoked secrets whose slow hash the record kept, by secret id: a secret this replica never
        # verified is checked against its own (as a live one, within the same limits on guesses).
        self._revoked_records: dict[str, KeyRecord] = {}

    def seen(self, raw: Mapping[str, Any], revoked: Mapping[str, Any] | None = None) -> None:
        """The record's keys as read now: a secret no longer there is forgotten here (its cache too);
        `revoked`: the revoked secrets' records whose slow hash was kept."""
        records = {}
        for secret_id, value in raw.items():
            record = KeyRecord.from_json(secret_id, value)
            if record is not None:
                learnt = self._learnt.get(secret_id)
                if not record.check and learnt is not None and learnt[0] == record.digest:
                    record = replace(record, check=learnt[1])
                records[secret_id] = record
        self._records = records
        self._names = frozenset(record.name for record in records.values())
        self._learnt = {i: learnt for i, learnt in self._learnt.items() if i in records}
        for digest, (secret_id, _) in list(self._verified.items()):
            if secret_id not in records:
                del self._verified[digest]
                self._revoked[digest] = None
        while len(self._revoked) > CACHE_ENTRIES:
            self._revoked.popitem(last=False)
        self._revoked_records = {secret_id: record for secret_id, value in (revoked or {}).items()
                                 if secret_id not in records
                                 and (record := KeyRecord.from_json(secret_id, value)) is not None}
        self._guesses.keep(records.keys() | self._revoked_records.keys())
        self.fresh()

    def fresh(self) -> None:
        """The record was read just now (the same as before, maybe): the keys are current."""
        self._read_at = self._clock()

    def was_revoked(self, token: str) -> bool:
        """Whether `token` is a secret this replica verified before its revocation (its exact digest)."""
        return hashlib.sha256(token.encode()).digest() in self._revoked

    @property
    def records(self) -> dict[str, KeyRecord]:
        return dict(self._records)

    def names(self) -> frozenset[str]:
        return self._names

    def verify(self, token: str, source: str = "") -> str | None:
        """The key name `token` is a live secret of, or None (scrypt on this thread when not cached);
        `source`: the client's address, whose wrong secrets are counted together (429 past the limit)."""
        record, name = self._looked_up(token, source)
        if record is None or name is not None:
            return name
        return self._checked(token, record, slow_hash(token, bytes.fromhex(record.salt)), source)

    async def verify_off_loop(self, token: str, source: str = "") -> str | None:
        """`verify`, its scrypt (when not cached) in a worker thread of its own pool: the event loop
        serves other requests meanwhile. The record is read again after it: a revocation meanwhile wins."""
        key = hashlib.sha256(token.encode()).digest()
        record, name = self._looked_up(token, source, joining=self._guesses.under_way(key) is not None)
        if record is None or name is not None:
            return name
        checking = self._guesses.under_way(key)
        if checking is None:
            checking = asyncio.get_running_loop().run_in_executor(_SCRYPT_POOL, slow_hash, token,
                                                                  bytes.fromhex(record.salt))
            self._guesses.started(key, (record.secret_id, client_group(source)), record.digest, checking,
                                  hmac.compare_digest)
        digest = await asyncio.shield(checking)  # a caller gone does not cancel the others' check
        current = self._records.get(record.secret_id) or self._revoked_records.get(record.secret_id)
        if current is None or current.digest != record.digest:
            return None
        return self._checked(token, record, digest, source, failure_counted=True)

    def _looked_up(self, token: str, source: str, *, joining: bool = False) -> tuple[KeyRecord | None, str | None]:
        """The token's record (None: no such id, or a secret its check rules out, refused with no
        scrypt paid for a guess) and its name when the secret was verified here within CACHE_SECONDS.
        `joining`: the same token is being checked already (no new scrypt, so no new count against the
        limits). Otherwise 429 past a limit: see the module's docstring and docs/security.md."""
        secret_id = secret_id_of(token)
        record = self._records.get(secret_id) or self._revoked_records.get(secret_id) \
            if secret_id is not None else None
        if record is None or (record.secret_id not in self._records
                              and hashlib.sha256(token.encode()).digest() in self._revoked):
            return None, None  # a revoked secret known here already: no scrypt again
        if self._read_at is None or self._clock() - self._read_at > STALE_SECONDS:
            raise ApiError(503, "store_unavailable", "runtime API keys cannot be checked: this replica has not "
                           "read them from the store for a while, so a revocation may not have reached it; try "
                           "again shortly (a key of DISPATCHER_API_KEYS still works)", retry_after=5.0)
        cached = self._verified.get(hashlib.sha256(token.encode()).digest())
        if cached is not None and cached[0] == record.secret_id and cached[1] > self._clock():
            return record, record.name
        guesser = (record.secret_id, client_group(source))
        if joining:
            return record, None
        if record.check and not record.passes(token):  # ruled out by its check: counted, no scrypt
            self._guesses.ruled_out(guesser)
            return None, None
        # A scrypt to pay: the real secret, one forged to pass the check, or any secret of an old record.
        self._guesses.scrypt_allowed(guesser, checked=bool(record.check))
        if record.secret_id not in self._records and not self._guesses.revoked_scrypt_taken():
            return None, None  # revoked: past the revoked ids' shared budget, answered as an unknown id
        return record, None

    @property
    def _told(self) -> WindowCounts:
        """The guessers logged this window (bounded like every count of wrong secrets)."""
        return self._guesses.told

    def _checked(self, token: str, record: KeyRecord, digest: str, source: str, *,
                 failure_counted: bool = False) -> str | None:
        if not hmac.compare_digest(digest, record.digest):
            if not failure_counted:
                self._guesses.failed((record.secret_id, client_group(source)), scrypt=True)
            return None
        if record.secret_id not in self._records:  # a revoked secret's own: its holder is told so
            self._revoked[hashlib.sha256(token.encode()).digest()] = None
            while len(self._revoked) > CACHE_ENTRIES:
                self._revoked.popitem(last=False)
            return None
        if not record.check:  # an old record: its check, learnt now, spares the real secret its gate
            self._learnt[record.secret_id] = (record.digest, quick_check(token))
            self._records[record.secret_id] = replace(record, check=quick_check(token))
        key = hashlib.sha256(token.encode()).digest()
        self._verified[key] = (record.secret_id, self._clock() + CACHE_SECONDS)
        self._verified.move_to_end(key)
        while len(self._verified) > CACHE_ENTRIES:
            self._verified.popitem(last=False)
        return record.name

