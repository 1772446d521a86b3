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
budget and caps on scrypts under way (429, never queued). docs/security.md says what a guesser meets.

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
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from dispatcher.api.guess_limits import WindowCounts, client_group
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
# A secret id is not secret (lists and the audit trail show it): wrong secrets for one id cost a
# scrypt each, so past this many in a window this replica stops checking new ones for that id (a
# secret it verified before still answers from the cache). Bounds the CPU a guesser can make it burn.
FAILURES_PER_WINDOW, FAILURE_WINDOW_SECONDS = 20, 60.0
# The same across every address, so rotating addresses does not lift it: generous, since a guess its
# check rules out costs a SHA-256 only, and the real secret (it passes the check) is not held back by it.
FAILURES_PER_ID_PER_WINDOW = 1000
# Secrets that pass an id's check yet prove wrong (a scrypt each): only someone who knows the check can
# make them, so they are few for one id across all addresses; past this many in a window, secrets of
# that id not verified here before are answered 429 (the cache still answers the real one).
SCRYPT_FAILURES_PER_ID = 10
# Scrypts under way, for one id and in all: past these a new one is refused (429) rather than queued, so
# a flood never builds a queue that delays every other runtime key's first check.
SCRYPTS_PER_ID, SCRYPTS_IN_FLIGHT = 2, 4
WARNINGS_PER_WINDOW = 10  # log lines about guessers a window, all of them together
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


Guesser = tuple[str, str]  # (secret id, client group): whose wrong secrets are counted together


class RuntimeKeys:
    """The runtime keys as this replica last read them, and the check of a presented secret."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._records: dict[str, KeyRecord] = {}
        self._names: frozenset[str] = frozenset()  # the records' names, as of the last read: asked per start
        self._clock = clock
        self._verified: OrderedDict[bytes, tuple[str, float]] = OrderedDict()  # digest → (secret id, until)
        # Wrong secrets: by guesser (secret id, client group), by id, and those that cost a scrypt, by id.
        self._failures = WindowCounts(FAILURE_WINDOW_SECONDS, CACHE_ENTRIES, clock)
        self._told = WindowCounts(FAILURE_WINDOW_SECONDS, CACHE_ENTRIES, clock)  # guessers logged this window
        self._warnings = WindowCounts(FAILURE_WINDOW_SECONDS, 1, clock)  # log lines this window, in all
        # The check a record made before checks existed would hold, learnt here when its secret verified:
        # secret id → (the record's digest, check).
        self._learnt: dict[str, tuple[str, str]] = {}
        # Checks under way (by the token's SHA-256): the same token presented again meanwhile waits
        # for that one scrypt, and a guesser's checks under way count against its limit as failures do,
        # so a burst of wrong secrets sent at once costs no more scrypts than one sent in turn.
        self._checking: dict[bytes, asyncio.Future[str]] = {}
        self._checking_per_guesser: dict[Guesser, int] = {}
        self._checking_per_id: dict[str, int] = {}
        self._read_at: float | None = None  # when the record was last read (None: never)

    def seen(self, raw: Mapping[str, Any]) -> None:
        """The record's keys as read now: a secret no longer there is forgotten here (its cache too)."""
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
        self._failures.keep(lambda key: key[1] in records)  # type: ignore[index]
        self._told.keep(lambda key: key[0] in records)  # type: ignore[index]
        self.fresh()

    def fresh(self) -> None:
        """The record was read just now (the same as before, maybe): the keys are current."""
        self._read_at = self._clock()

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
        record, name = self._looked_up(token, source, joining=key in self._checking)
        if record is None or name is not None:
            return name
        checking = self._checking.get(key)
        if checking is None:
            checking = asyncio.get_running_loop().run_in_executor(_SCRYPT_POOL, slow_hash, token,
                                                                  bytes.fromhex(record.salt))
            self._started(key, (record.secret_id, client_group(source)), record, checking)
        digest = await asyncio.shield(checking)  # a caller gone does not cancel the others' check
        if self._records.get(record.secret_id) is None or \
                self._records[record.secret_id].digest != record.digest:
            return None
        return self._checked(token, record, digest, source, failure_counted=True)

    def _started(self, key: bytes, guesser: Guesser, record: KeyRecord, checking: asyncio.Future[str]) -> None:
        self._checking[key] = checking
        self._checking_per_guesser[guesser] = self._checking_per_guesser.get(guesser, 0) + 1
        self._checking_per_id[guesser[0]] = self._checking_per_id.get(guesser[0], 0) + 1

        def done(finished: asyncio.Future[str]) -> None:
            # The check under way becomes a failure in the same step: no moment where it counts as neither.
            if finished.cancelled() or finished.exception() is not None or \
                    not hmac.compare_digest(finished.result(), record.digest):
                self._failed(guesser, scrypt=True)
            self._checking.pop(key, None)
            _less(self._checking_per_guesser, guesser)
            _less(self._checking_per_id, guesser[0])

        checking.add_done_callback(done)

    def _looked_up(self, token: str, source: str, *, joining: bool = False) -> tuple[KeyRecord | None, str | None]:
        """The token's record (None: no such id, or a secret its check rules out, refused with no
        scrypt paid for a guess) and its name when the secret was verified here within CACHE_SECONDS.
        `joining`: the same token is being checked already (no new scrypt, so no new count against the
        limits). Otherwise 429 past a limit: see the module's docstring and docs/security.md."""
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
        guesser = (record.secret_id, client_group(source))
        if joining:
            return record, None
        if record.check and not record.passes(token):  # ruled out by its check: counted, no scrypt
            if self._failures.count(("id",) + guesser[:1]) >= FAILURES_PER_ID_PER_WINDOW:
                raise self._too_many(guesser, ("id", record.secret_id), "from any address")
            self._limit(guesser)
            self._failed(guesser, scrypt=False)
            return None, None
        # A scrypt to pay: the real secret, one forged to pass the check, or any secret of an old record.
        if record.check:
            scrypts = self._failures.count(("scrypt", record.secret_id))
            if scrypts + self._checking_per_id.get(record.secret_id, 0) >= SCRYPT_FAILURES_PER_ID:
                raise self._too_many(guesser, ("scrypt", record.secret_id), "that pass its check")
        else:
            self._limit(guesser)
        if self._checking_per_id.get(record.secret_id, 0) >= SCRYPTS_PER_ID or \
                len(self._checking) >= SCRYPTS_IN_FLIGHT:
            raise ApiError(429, "key_checks_busy", "this replica is checking as many new secrets as it takes at "
                           "once: try again in a second", retry_after=1.0)
        return record, None

    def _limit(self, guesser: Guesser) -> None:
        """429 when `guesser` (one id, one client group) sent too many wrong secrets this window."""
        tried = self._failures.count(("guess",) + guesser) + self._checking_per_guesser.get(guesser, 0)
        if tried >= FAILURES_PER_WINDOW:
            raise self._too_many(guesser, ("guess",) + guesser, "from this address")

    def _failed(self, guesser: Guesser, *, scrypt: bool) -> None:
        """A wrong secret from `guesser`, counted for it, for its id and (when it cost one) as a scrypt."""
        self._failures.add(("guess",) + guesser)
        self._failures.add(("id", guesser[0]))
        if scrypt:
            self._failures.add(("scrypt", guesser[0]))

    def _too_many(self, guesser: Guesser, counted: tuple[str, ...], whence: str) -> ApiError:
        now = self._clock()
        oldest = self._failures.oldest(counted)
        wait = max(1.0, (oldest + FAILURE_WINDOW_SECONDS - now) if oldest is not None else FAILURE_WINDOW_SECONDS)
        if not self._told.count(guesser) and self._warnings.count("all") < WARNINGS_PER_WINDOW:
            self._told.add(guesser)
            self._warnings.add("all")
            log.warning("too many wrong secrets in %.0f s for runtime key %s %s (%s): answered 429 until the "
                        "window moves on", FAILURE_WINDOW_SECONDS, guesser[0], whence,
                        guesser[1] or "an unknown address")
        return ApiError(429, "too_many_wrong_secrets", f"too many wrong secrets for this key {whence}: try "
                        f"again in {math.ceil(wait)} s with the right one", retry_after=wait)

    def _checked(self, token: str, record: KeyRecord, digest: str, source: str, *,
                 failure_counted: bool = False) -> str | None:
        if not hmac.compare_digest(digest, record.digest):
            if not failure_counted:
                self._failed((record.secret_id, client_group(source)), scrypt=True)
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


def _less(counts: dict[Any, int], key: Any) -> None:
    left = counts.get(key, 1) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
