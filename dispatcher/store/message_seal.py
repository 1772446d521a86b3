"""What replicas send each other through the store is signed, so the store's other users cannot speak for them.

Every message on a replica's relay and media channels carries an HMAC-SHA256 keyed with
`REDIS_MESSAGE_SECRET` (never a bot's) over its channel, sender, counter, time and body, and its
body is AES-GCM ciphertext under a key derived from the same secret:

    v2.<sender: 16 hex>.<counter>.<milliseconds since the epoch>.<mac: 64 hex>.<body, encrypted>

A receiver refuses the malformed, the forged, the stale (`WINDOW_SECONDS`) and the replayed (a
per-sender window of `REPLAY_BITS`, kept only for senders that verified). Records left in the store
for later (`seal_record`, the webhook outbox) carry a third derived key's MAC over where they are
kept. Why each part, and the three-deploy rotation with `REDIS_ACCEPTED_MESSAGE_SECRET`:
docs/replicas.md and docs/pulumi.md ("Changing the replicas' message secret").
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from prometheus_client import Counter

from dispatcher.store.store_settings import MIN_SECRET_CHARACTERS as MIN_SECRET_CHARACTERS  # named here too

log = logging.getLogger("dispatcher.store.messages")

VERSION = b"v2"  # v1 carried bodies in clear: a replica of that version is refused as malformed
WINDOW_SECONDS = 30.0  # clock skew between replicas plus the store's delivery, and no more
REPLAY_BITS = 4096  # a sender's messages may arrive this far out of order (the relay publishes on a pool)
MAX_SENDERS = 1024  # replica processes heard from within a window (each restart is a new sender)
LOG_EVERY_SECONDS = 60.0
_HEADER_FIELDS = 5  # version, sender, counter, time, mac
NONCE_BYTES = 12  # AES-GCM's standard nonce, random per message


def _derived(secret: str, use: bytes) -> bytes:
    return hmac.new(secret.encode(), use, hashlib.sha256).digest()


@dataclass(frozen=True)
class _Keys:
    """One secret's keys, a key of its own for each use, so no MAC or ciphertext made for one use
    is valid for another."""

    mac: bytes
    aead: AESGCM
    record: bytes

    @classmethod
    def of(cls, secret: str) -> _Keys:
        if len(secret) < MIN_SECRET_CHARACTERS:
            raise ValueError(f"the store's message secret needs at least {MIN_SECRET_CHARACTERS} characters")
        return cls(_derived(secret, b"voicefleet store messages v1"),
                   AESGCM(_derived(secret, b"voicefleet store message bodies v1")),
                   _derived(secret, b"voicefleet store records v1"))


@dataclass
class _Sender:
    highest: int
    seen: int  # bit i: counter `highest - i` was taken
    heard: float


class MessageSeal:
    """Signs this replica's messages and opens the other replicas' (one per replica)."""

    def __init__(self, secret: str, *, accepted: str | None = None, clock: Callable[[], float] = time.time,
                 window: float = WINDOW_SECONDS) -> None:
        """`secret` seals and opens; `accepted`, during a change of secret, only opens."""
        self._own = _Keys.of(secret)
        self._opening = (self._own, *((_Keys.of(accepted),) if accepted else ()))
        self._clock = clock
        self._window = window
        self._sender = secrets.token_hex(8).encode()
        self._counter = 0
        self._senders: OrderedDict[bytes, _Sender] = OrderedDict()
        self.refused = Counter("voicefleet_store_messages_refused",
                               "Messages on this replica's store channels and records it read from the store not "
                               "acted on, by channel or record kind and reason (malformed, forged, stale, "
                               "replayed; busy: the relay's work was full; oversized: a record too large to keep, "
                               "never sent).",
                               ["channel", "reason"], registry=None)
        self._logged_at = float("-inf")
        self._unlogged = 0

    def seal(self, channel: str, body: bytes) -> bytes:
        self._counter += 1
        header = [VERSION, self._sender, b"%d" % self._counter, b"%d" % int(self._clock() * 1000)]
        return b".".join([*header, self._mac(self._own, channel, header, body), body])

    def open(self, channel: str, kind: str, message: bytes) -> bytes | None:
        """The body, if the message is a replica's, for `channel`, fresh and new; else None (counted)."""
        parts = message.split(b".", _HEADER_FIELDS)
        if len(parts) != _HEADER_FIELDS + 1 or parts[0] != VERSION or not parts[2].isdigit() or not parts[3].isdigit():
            self._refuse(kind, "malformed")
            return None
        header, mac, body = parts[:4], parts[4], parts[5]
        if not any(hmac.compare_digest(mac, self._mac(keys, channel, header, body)) for keys in self._opening):
            self._refuse(kind, "forged")
            return None
        now = self._clock()
        if abs(now - int(header[3]) / 1000) > self._window:
            self._refuse(kind, "stale")
            return None
        if not self._first_time(header[1], int(header[2]), now):
            self._refuse(kind, "replayed")
            return None
        return body

    def conceal(self, channel: str, body: bytes) -> bytes:
        """`body` encrypted for `channel` (its nonce first)."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._own.aead.encrypt(nonce, body, channel.encode())

    def reveal(self, channel: str, kind: str, concealed: bytes) -> bytes | None:
        """What `conceal` hid, or None (counted as forged: only a replica's key makes a body that opens)."""
        for keys in self._opening:
            try:
                body: bytes = keys.aead.decrypt(concealed[:NONCE_BYTES], concealed[NONCE_BYTES:], channel.encode())
                return body
            except (InvalidTag, ValueError):
                continue
        self._refuse(kind, "forged")
        return None

    def refuse_busy(self, kind: str) -> None:
        self._refuse(kind, "busy")

    def seal_record(self, where: str, record: bytes) -> bytes:
        """`record` with the replicas' MAC, to be kept at `where` (its key and field) in the store."""
        return self._record_mac(self._own, where, record) + b"." + record

    def open_record(self, kind: str, where: str, sealed: bytes) -> bytes | None:
        """The record a replica sealed for `where`, or None (counted: malformed or forged)."""
        mac, dot, record = sealed.partition(b".")
        if not dot or len(mac) != 64:
            self._refuse(kind, "malformed")
            return None
        if not any(hmac.compare_digest(mac, self._record_mac(keys, where, record)) for keys in self._opening):
            self._refuse(kind, "forged")
            return None
        return record

    def refuse_record(self, kind: str, reason: str) -> None:
        """A record that opened but is not one a replica acts on (of a kind it never writes, expired), or one this
        replica would write and does not (too large for a read to keep)."""
        self._refuse(kind, reason)

    @staticmethod
    def _record_mac(keys: _Keys, where: str, record: bytes) -> bytes:
        place = where.encode()  # its length first: no split of place and record reads as another
        return hmac.new(keys.record, b"%d:" % len(place) + place + record, hashlib.sha256).hexdigest().encode()

    @staticmethod
    def _mac(keys: _Keys, channel: str, header: list[bytes], body: bytes) -> bytes:
        signed = hmac.new(keys.mac, channel.encode() + b"\n", hashlib.sha256)
        for part in header:
            signed.update(part + b"\n")
        signed.update(body)
        return signed.hexdigest().encode()

    def _first_time(self, sender: bytes, counter: int, now: float) -> bool:
        known = self._senders.get(sender)
        if known is None:
            self._forget_quiet(now)
            self._senders[sender] = _Sender(counter, 1, now)
            return True
        self._senders.move_to_end(sender)
        known.heard = now
        if counter > known.highest:
            shift = counter - known.highest
            known.seen = ((known.seen << shift) | 1) & ((1 << REPLAY_BITS) - 1)
            known.highest = counter
            return True
        behind = known.highest - counter
        if behind >= REPLAY_BITS or known.seen >> behind & 1:
            return False  # too old to tell apart from a replay, or a replay
        known.seen |= 1 << behind
        return True

    def _forget_quiet(self, now: float) -> None:
        """Senders silent for two windows: anything they sent is stale by now, so nothing to remember."""
        while self._senders:
            oldest = next(iter(self._senders.values()))
            if oldest.heard > now - 2 * self._window and len(self._senders) < MAX_SENDERS:
                break
            self._senders.popitem(last=False)

    def _refuse(self, kind: str, reason: str) -> None:
        self.refused.labels(kind, reason).inc()
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_SECONDS:
            log.warning("refused %d message(s) on this replica's store channels or records (last: %s, %s); "
                        "see voicefleet_store_messages_refused_total", self._unlogged, kind, reason)
            self._logged_at, self._unlogged = now, 0
        return None
