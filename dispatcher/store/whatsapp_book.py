"""WhatsApp calls as every replica sees them: which Meta call a session carries, whether the call was
answered and whether its session ended, and the hang-ups at Meta still owed.

The replica that takes a call's `connect` answers it; its session may end anywhere (its bot's channel
or a stop at another replica, its time limit, a restart of the answering replica), and the replica
that sees the end must be able to hang the call up at Meta. So the call is recorded here under its
session (`whatsapp:call:<session id>`, a hash): `call`, the call's id and number, sealed with the
replicas' record key (dispatcher/store/message_seal.py); `accepting`, set before Meta is sent the
`accept` (a session that ends then, with its answering replica dead, still gets its call hung up);
`answered` and `ended`, each set in one step
that reads the other, so whichever of "the accept went through" and "the session ended" comes second
sees the first; `owed`, when a hang-up was first owed. The marks and `owed` are sealed too, each for its
own field: whoever may write the store (without the message secret) cannot mark a live call ended nor
owe its hang-up, so no replica hangs up a call on their word (an owed entry whose seal does not open is
dropped; the record stays).

A hang-up Meta never answered (unreachable, 5xx past the retries; or a replica that died between
deciding it and sending it) is owed (`whatsapp:owed`, by due time): every replica's sweep claims due
ones by moving them a claim ahead in one step, so two replicas never retry one at once, and a replica
that dies holding a claim only delays it. With one process, or while the store does not answer, the
same records are kept in this process's memory (`MemoryWhatsAppBook`, `ForgivingWhatsAppBook`).
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Literal, Protocol

from dispatcher.store.client import Store, StoreUnavailable
from dispatcher.store.due_claims import CLAIM_DUE
from dispatcher.store.message_seal import MessageSeal

log = logging.getLogger("dispatcher.store.whatsapp_book")

Mark = Literal["accepting", "answered", "ended"]
MAX_REMEMBERED = 10_000  # calls one process keeps at once (each is a few ids)

# Only the commands the dispatcher's store user is granted (stacks/shared/store_access.py), all in scripts:
# each step is one round trip, and atomic.
_OPEN = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'call', ARGV[1])
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""
_FIELDS = "return {redis.call('HGET', KEYS[1], 'call'), redis.call('HGET', KEYS[1], 'answered'), " \
          "redis.call('HGET', KEYS[1], 'ended'), redis.call('HGET', KEYS[1], 'owed'), " \
          "redis.call('HGET', KEYS[1], 'accepting')}"
# ARGV: the mark, its sealed value. No record, no mark (the end of a session that carries no call writes
# nothing).
_MARK = """
if not redis.call('HGET', KEYS[1], 'call') then
  return false
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
""" + _FIELDS
# ARGV: due, when it was first owed (sealed), session id.
_OWE = """
if not redis.call('HGET', KEYS[1], 'call') then
  return 0
end
if not redis.call('HGET', KEYS[1], 'owed') then
  redis.call('HSET', KEYS[1], 'owed', ARGV[2])
end
return redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
"""
_FORGET_OWED = "return redis.call('ZREM', KEYS[1], ARGV[1])"
_CLOSE = """
redis.call('DEL', KEYS[1])
return redis.call('ZREM', KEYS[2], ARGV[1])
"""


@dataclass(frozen=True)
class BookedCall:
    call_id: str
    phone_number_id: str
    answered: bool = False
    ended: bool = False
    accepting: bool = False  # Meta is being (or was) sent its `accept`
    owed_since: float | None = None  # when a hang-up of it was first owed (epoch seconds)


class WhatsAppBook(Protocol):
    async def open(self, session_id: str, call_id: str, phone_number_id: str, seconds: float) -> None:
        """Records the call of `session_id`, kept `seconds` (longer than a call lives)."""
        ...

    async def mark(self, session_id: str, mark: Mark) -> BookedCall | None:
        """Marks the call answered, or its session ended, and reads it back in the same step; None when
        `session_id` carries no call recorded here."""
        ...

    async def owe(self, session_id: str, due: float) -> None:
        """A hang-up of the call is owed from `due` (epoch seconds), unless it is recorded no longer."""
        ...

    async def holds(self, session_id: str) -> bool:
        """Whether a call of `session_id` is recorded here (its region took its `connect`, and it is not over)."""
        ...

    async def due(self, now: float, claim_until: float, most: int) -> list[tuple[str, BookedCall | None]]:
        """At most `most` owed hang-ups due by `now`, claimed until `claim_until`, each with its call
        (None: its record ran out)."""
        ...

    async def close(self, session_id: str) -> None:
        """The call is over at Meta: its record and any hang-up owed are gone."""
        ...


class MemoryWhatsAppBook:
    """One process's book: at most `most` calls, those recorded first forgotten first."""

    def __init__(self, clock: Callable[[], float] = time.time, most: int = MAX_REMEMBERED) -> None:
        self._clock, self._most = clock, most
        self._calls: OrderedDict[str, tuple[BookedCall, float]] = OrderedDict()  # session → (call, until)
        self._owed: dict[str, float] = {}  # session → due

    def _get(self, session_id: str) -> BookedCall | None:
        held = self._calls.get(session_id)
        if held is None:
            return None
        if held[1] <= self._clock():
            self._calls.pop(session_id, None)
            return None
        return held[0]

    async def open(self, session_id: str, call_id: str, phone_number_id: str, seconds: float) -> None:
        while len(self._calls) >= self._most:
            forgotten, _ = self._calls.popitem(last=False)
            self._owed.pop(forgotten, None)
        self._calls[session_id] = (BookedCall(call_id, phone_number_id), self._clock() + seconds)

    async def mark(self, session_id: str, mark: Mark) -> BookedCall | None:
        call = self._get(session_id)
        if call is None:
            return None
        if mark == "accepting":
            call = replace(call, accepting=True)
        else:
            call = replace(call, answered=True) if mark == "answered" else replace(call, ended=True)
        self._calls[session_id] = (call, self._calls[session_id][1])
        return call

    async def owe(self, session_id: str, due: float) -> None:
        call = self._get(session_id)
        if call is None:
            return
        if call.owed_since is None:
            self._calls[session_id] = (replace(call, owed_since=self._clock()), self._calls[session_id][1])
        self._owed[session_id] = due

    async def holds(self, session_id: str) -> bool:
        return self._get(session_id) is not None

    async def due(self, now: float, claim_until: float, most: int) -> list[tuple[str, BookedCall | None]]:
        found = sorted((due, session_id) for session_id, due in self._owed.items() if due <= now)[:most]
        for _, session_id in found:
            self._owed[session_id] = claim_until
        return [(session_id, self._get(session_id)) for _, session_id in found]

    async def close(self, session_id: str) -> None:
        self._calls.pop(session_id, None)
        self._owed.pop(session_id, None)


class StoreWhatsAppBook:
    def __init__(self, store: Store, seal: MessageSeal) -> None:
        self._store, self._seal = store, seal
        self._owed_key = store.key("whatsapp", "owed")
        self._open = store.redis.register_script(_OPEN)
        self._fields = store.redis.register_script(_FIELDS)
        self._mark = store.redis.register_script(_MARK)
        self._owe = store.redis.register_script(_OWE)
        self._due = store.redis.register_script(CLAIM_DUE)  # due entries, claimed a claim ahead
        self._close = store.redis.register_script(_CLOSE)
        self._forget_owed = store.redis.register_script(_FORGET_OWED)

    def _key(self, session_id: str) -> str:
        return self._store.key("whatsapp", "call", session_id)

    async def open(self, session_id: str, call_id: str, phone_number_id: str, seconds: float) -> None:
        key = self._key(session_id)
        sealed = self._seal.seal_record(key, json.dumps([call_id, phone_number_id]).encode()).decode()
        args: list[str | int] = [sealed, max(1, int(seconds * 1000))]
        await self._store.call(lambda: self._open(keys=[key], args=args))

    async def mark(self, session_id: str, mark: Mark) -> BookedCall | None:
        key = self._key(session_id)
        sealed = self._seal_field(key, mark, b"1")
        fields = await self._store.call(lambda: self._mark(keys=[key], args=[mark, sealed]))
        return self._opened(key, fields) if fields else None

    async def owe(self, session_id: str, due: float) -> None:
        key = self._key(session_id)
        since = self._seal_field(key, "owed", repr(time.time()).encode())
        keys = [key, self._owed_key]
        await self._store.call(lambda: self._owe(keys=keys, args=[due, since, session_id]))

    async def holds(self, session_id: str) -> bool:
        key = self._key(session_id)
        fields = await self._store.call(partial(self._fields, keys=[key], args=[]))
        return bool(fields) and self._opened(key, fields) is not None

    async def due(self, now: float, claim_until: float, most: int) -> list[tuple[str, BookedCall | None]]:
        found: list[tuple[str, BookedCall | None]] = []
        while len(found) < most:  # claimed again past the entries dropped (each leaves the set)
            claim = partial(self._due, keys=[self._owed_key], args=[now, claim_until, most - len(found)])
            members = await self._store.call(claim)
            if not members:
                break
            for member in members:
                session_id = str(member)
                entry = await self._claimed(session_id)
                if entry is not None:
                    found.append(entry)
        return found

    async def _claimed(self, session_id: str) -> tuple[str, BookedCall | None] | None:
        """A claimed entry with its call (None: its record ran out), or None: not owed by a replica, dropped
        (the record kept)."""
        key = self._key(session_id)
        fields = await self._store.call(partial(self._fields, keys=[key], args=[]))
        if not fields or not fields[0]:
            return session_id, None
        call = self._opened(key, fields)
        if call is None or call.owed_since is None:
            log.warning("whatsapp: session %s: an owed hang-up no replica sealed was dropped", session_id)
            await self._store.call(partial(self._forget_owed, keys=[self._owed_key], args=[session_id]))
            return None
        return session_id, call

    async def close(self, session_id: str) -> None:
        keys = [self._key(session_id), self._owed_key]
        await self._store.call(lambda: self._close(keys=keys, args=[session_id]))

    def _seal_field(self, key: str, field: str, value: bytes) -> str:
        return self._seal.seal_record(f"{key}:{field}", value).decode()

    def _open_field(self, key: str, field: str, sealed: Any) -> bytes | None:
        """A field's value as a replica sealed it, or None: unset, or not a replica's (counted by the seal)."""
        return self._seal.open_record("whatsapp", f"{key}:{field}", str(sealed).encode()) if sealed else None

    def _opened(self, key: str, fields: list[Any]) -> BookedCall | None:
        """The record's call, or None: not a replica's (counted by the seal), or gone. A mark or `owed`
        that does not open reads as unset."""
        sealed, answered, ended, owed, accepting = (list(fields) + [None] * 5)[:5]
        if not sealed:
            return None
        opened = self._seal.open_record("whatsapp", key, str(sealed).encode())
        if opened is None:
            return None
        try:
            call_id, number = json.loads(opened)
            owed_at = self._open_field(key, "owed", owed)
            owed_since = float(owed_at) if owed_at is not None else None
        except ValueError:
            return None
        return BookedCall(str(call_id), str(number), answered=self._open_field(key, "answered", answered) == b"1",
                          ended=self._open_field(key, "ended", ended) == b"1", owed_since=owed_since,
                          accepting=self._open_field(key, "accepting", accepting) == b"1")


class ForgivingWhatsAppBook:
    """The store's book; while the store does not answer, this process's (what one process would do)."""

    def __init__(self, shared: StoreWhatsAppBook, alone: MemoryWhatsAppBook) -> None:
        self._shared, self._alone = shared, alone

    async def open(self, session_id: str, call_id: str, phone_number_id: str, seconds: float) -> None:
        await self._alone.open(session_id, call_id, phone_number_id, seconds)  # a later outage still finds it
        try:
            await self._shared.open(session_id, call_id, phone_number_id, seconds)
        except StoreUnavailable:
            log.warning("whatsapp: session %s: its call is recorded at this replica only (the store did not "
                        "answer): an end seen elsewhere will not hang it up", session_id)

    async def mark(self, session_id: str, mark: Mark) -> BookedCall | None:
        here = await self._alone.mark(session_id, mark)
        try:  # a call booked while the store blinked is in this process's memory only: still found there
            return (await self._shared.mark(session_id, mark)) or here
        except StoreUnavailable:
            if here is None:  # not known here, not known to be absent there: the caller may ask again
                raise
            return here

    async def owe(self, session_id: str, due: float) -> None:
        try:
            await self._shared.owe(session_id, due)
        except StoreUnavailable:
            await self._alone.owe(session_id, due)

    async def holds(self, session_id: str) -> bool:
        if await self._alone.holds(session_id):
            return True
        return await self._shared.holds(session_id)  # StoreUnavailable: not known here, maybe there

    async def due(self, now: float, claim_until: float, most: int) -> list[tuple[str, BookedCall | None]]:
        found = await self._alone.due(now, claim_until, most)
        try:
            found += await self._shared.due(now, claim_until, most)
        except StoreUnavailable:
            pass
        return found

    async def close(self, session_id: str) -> None:
        await self._alone.close(session_id)
        try:
            await self._shared.close(session_id)
        except StoreUnavailable:
            log.warning("whatsapp: session %s: its call's record stays in the store until it runs out", session_id)
