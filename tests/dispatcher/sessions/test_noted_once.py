"""What a timeline notes once (dispatcher/sessions/noted_once.py): once at any replica, and never lost to a
claim that did not finish. The store here is a stand-in for the shared store's first claims (the real one is
proven across two replicas in tests/dispatcher/api/test_delete_status.py and test_call_outcome_once.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from dispatcher.sessions.noted_once import NotedOnce
from dispatcher.store.unavailable import StoreUnavailable


@dataclass
class Claims:
    """First claims as the store keeps them; `fail` raises its next exception instead of answering."""

    held: dict[str, str] = field(default_factory=dict)
    fail: list[BaseException] = field(default_factory=list)

    async def first(self, what: str, value: str, seconds: float) -> str:
        if self.fail:
            raise self.fail.pop(0)
        return self.held.setdefault(what, value)


@dataclass
class Coordination:
    key_holders: Claims


def noted_once(claims: Claims) -> NotedOnce:
    return NotedOnce(Coordination(claims))  # type: ignore[arg-type]


async def test_two_replicas_note_it_once_and_each_remembers_its_own() -> None:
    claims = Claims()
    here, there = noted_once(claims), noted_once(claims)
    assert await here.first("stop_requested", "s1") is True
    assert await there.first("stop_requested", "s1") is False
    assert await here.first("stop_requested", "s1") is False
    assert await here.first("call_outcome=busy", "s1") is True  # another kind, its own mark


async def test_a_claim_cancelled_midway_is_asked_again() -> None:
    claims = Claims(fail=[asyncio.CancelledError()])
    here = noted_once(claims)
    with pytest.raises(asyncio.CancelledError):
        await here.first("call_outcome=busy", "s1")
    assert await here.first("call_outcome=busy", "s1") is True  # the retry notes it: nothing was noted


@pytest.mark.parametrize("unanswered_notes", [True, False])
async def test_a_store_that_does_not_answer(unanswered_notes: bool) -> None:
    claims = Claims(fail=[StoreUnavailable("down")])
    here = noted_once(claims)
    if unanswered_notes:
        assert await here.first("stop_requested", "s1") is True  # noted, as before the mark
        assert await here.first("stop_requested", "s1") is False
    else:
        with pytest.raises(StoreUnavailable):
            await here.first("sip_ended", "s1", unanswered_notes=False)
        assert await here.first("sip_ended", "s1", unanswered_notes=False) is True  # asked again once it answers
