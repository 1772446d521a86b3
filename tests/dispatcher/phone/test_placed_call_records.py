"""A placed call's SID and its answering-machine verdict, kept beside its values by two writers that may
interleave (the create's answer at one replica, the carrier's verdict callback at another, or both in one
process): neither write may drop the other. The interleavings are forced here, on the one-process store
(dispatcher/store/local.py); the same across two replicas on a real redis-server:
tests/replicas/test_placed_call_records.py. The carrier's create is held where the network could hold its
answer (`_create`), nothing else of the dialer replaced."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from dispatcher.phone.twilio_calls import TwilioCalls, TwilioCredentials
from dispatcher.phone.twilio_dial import DialSettings
from dispatcher.phone.twilio_dialer import TwilioDialer
from dispatcher.store.local import LocalCoordination
from dispatcher.store.memory import LocalFirstClaims
from dispatcher.store.secrets_vault import MemoryVault
from dispatcher.store.unavailable import StoreUnavailable
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN

SID = "CA" + "1" * 32
VALUES = {"owner": "k1", "body": {}, "voicemail": "hang_up"}


class HeldReads(MemoryVault):
    """The call's values in memory, each read held until `release` (a store's answer may come late)."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def get(self, session_id: str) -> dict[str, Any] | None:
        values = await super().get(session_id)
        self.reading.set()
        await self.release.wait()
        return values


class AnswerHeld(TwilioDialer):
    """Twilio's create answers once `meanwhile` is done: what a callback did before the answer arrived."""

    meanwhile: Callable[[], Awaitable[None]]

    async def _create(self, create: Any) -> dict[str, Any]:
        await self.meanwhile()
        return {"sid": SID, "status": "queued"}


def dialer(vault: MemoryVault) -> AnswerHeld:
    unused = TwilioCalls(TwilioCredentials(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN), "http://127.0.0.1:9")
    one_process = LocalCoordination()
    return AnswerHeld(DialSettings(calls_per_second=1.0, max_wait_seconds=1.0), unused, ACCOUNT_SID, one_process,
                      vault, one_process.key_holders)


async def test_a_verdict_kept_before_the_create_s_answer_survives_the_sid_kept_after_it() -> None:
    placing = dialer(MemoryVault())

    async def verdict_first() -> None:
        await placing.keep_verdict("s1", "human")

    placing.meanwhile = verdict_first
    assert await placing.place("s1", [], dict(VALUES)) == SID
    assert await placing.kept_verdict("s1") == "human"  # a bot attached now is told who answered
    assert await placing.placed_call("s1") == SID  # and the call can be handed to a person
    assert await placing.kept_call("s1") == VALUES


async def test_a_verdict_whose_write_lands_after_the_sid_is_kept_does_not_drop_it() -> None:
    vault = HeldReads()
    placing = dialer(vault)
    verdict: list[asyncio.Task[None]] = []

    async def verdict_begins() -> None:  # the callback starts before the answer; it may read the values
        verdict.append(asyncio.ensure_future(placing.keep_verdict("s1", "human")))
        reading = asyncio.ensure_future(vault.reading.wait())
        await asyncio.wait([verdict[0], reading], return_when=asyncio.FIRST_COMPLETED)
        reading.cancel()

    placing.meanwhile = verdict_begins
    assert await placing.place("s1", [], dict(VALUES)) == SID  # the SID kept while the verdict is under way
    vault.release.set()
    await asyncio.wait_for(verdict[0], 10)
    assert await placing.placed_call("s1") == SID
    assert await placing.kept_verdict("s1") == "human"


async def test_the_first_sid_and_verdict_named_are_kept_and_a_later_one_changes_neither() -> None:
    placing = dialer(MemoryVault())
    other = "CA" + "2" * 32
    assert await placing.bind_call("s1", SID) == SID
    assert await placing.bind_call("s1", other) == SID  # a second callback names the call the first named
    await placing.keep_verdict("s1", "human")
    await placing.keep_verdict("s1", "unknown")
    assert (await placing.placed_call("s1"), await placing.kept_verdict("s1")) == (SID, "human")


async def test_a_call_an_earlier_version_kept_its_sid_and_verdict_in_is_read_there() -> None:
    vault = MemoryVault()
    placing = dialer(vault)
    await vault.put("twilio-call:s1", {**VALUES, "call_sid": SID, "answered_by": "machine_start"}, 60)
    assert (await placing.placed_call("s1"), await placing.kept_verdict("s1")) == (SID, "machine_start")


class BlinkOnce(LocalFirstClaims):
    """The store's first claims, whose first write does not answer (a store that blinks)."""

    blinked = False

    async def first(self, what: str, value: str, seconds: float) -> str:
        if not self.blinked:
            self.blinked = True
            raise StoreUnavailable("the store did not answer: TimeoutError")
        return await super().first(what, value, seconds)


async def test_a_sid_the_store_did_not_take_at_once_is_kept_when_it_answers_again() -> None:
    unused = TwilioCalls(TwilioCredentials(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN), "http://127.0.0.1:9")
    placing = AnswerHeld(DialSettings(calls_per_second=1.0, max_wait_seconds=1.0), unused, ACCOUNT_SID,
                         LocalCoordination(), MemoryVault(), BlinkOnce())

    async def nothing() -> None:
        return None

    placing.meanwhile = nothing
    assert await placing.place("s1", [], dict(VALUES)) == SID
    assert await placing.placed_call("s1") == SID
