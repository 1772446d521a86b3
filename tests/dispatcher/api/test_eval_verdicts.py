"""An eval verdict is checked against the dispatcher's own session index before it is recorded: the
counts are the dispatcher's, and each session must be an eval's session pinned to that release and
not one the dispatcher saw fail counted as passed (the listing and its memory index, as one local
dispatcher keeps them; the real processes' test is tests/releases/test_eval_gate.py)."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.api.eval_verdicts import verified
from dispatcher.errors import ApiError
from dispatcher.sessions.ids import Caller, new_session_id
from dispatcher.sessions.listing import SessionListing
from dispatcher.store.session_index import MemorySessionIndex

SUITE = "0f" * 32
CALLER = Caller("client-1", b"o" * 32)


def sid(n: int) -> str:
    return new_session_id(CALLER.owner_key, f"call-{n}")


async def listing_with(*opened: tuple[int, str, bool]) -> SessionListing:
    """(n, release, eval) for each session started."""
    listing = SessionListing(MemorySessionIndex(), "", 3600.0)
    for n, release, is_eval in opened:
        listing.opened(sid(n), CALLER, release, "webrtc", eval=is_eval)
    await listing.settled()
    return listing


async def refusal(listing: SessionListing, name: str, payload: dict[str, object]) -> ApiError:
    with pytest.raises(ApiError) as refused:
        await verified(listing, name, payload, "admin-1")
    return refused.value


async def test_the_counts_are_the_dispatchers_own_from_the_sessions_and_the_failed_ones() -> None:
    listing = await listing_with((1, "next", True), (2, "next", True), (3, "next", True))
    verdict = await verified(listing, "next", {"suite": SUITE, "sessions": [sid(1), sid(2), sid(3)],
                                               "failed": [sid(2)]}, "admin-1")
    assert (verdict.passed, verdict.runs, verdict.ok, verdict.failed, verdict.by) == (2, 3, False, (sid(2),), "admin-1")


async def test_sessions_of_another_release_of_callers_or_never_started_are_refused_each_named() -> None:
    listing = await listing_with((1, "next", True), (2, "stable", False), (3, "other", True))
    refused = await refusal(listing, "other", {"suite": SUITE, "sessions": [sid(1), sid(2), sid(4)]})
    assert (refused.status, refused.code) == (422, "eval_sessions_refused")
    assert refused.extra["sessions"] == {
        sid(1): "an eval's session of release next, not other",
        sid(2): "not an eval's session (its start did not say \"eval\": true)",
        sid(4): "no session with this id was started here",
    }
    assert "voicefleet releases smoke other --suite PATH" in refused.message


async def test_a_session_the_dispatcher_saw_fail_is_never_a_passed_call() -> None:
    listing = await listing_with((1, "next", True), (2, "next", True))
    listing.timeline_event(sid(2), {"event": "failed", "code": "start_failed", "at": 1.0})
    await listing.settled()
    refused = await refusal(listing, "next", {"suite": SUITE, "sessions": [sid(1), sid(2)]})
    assert refused.extra["sessions"] == {sid(2): "counted as passed, but it failed here (start_failed)"}
    counted = await verified(listing, "next", {"suite": SUITE, "sessions": [sid(1), sid(2)], "failed": [sid(2)]}, "a")
    assert (counted.passed, counted.runs) == (1, 2)


@pytest.mark.parametrize(("payload", "words"), [
    ({"suite": "abc", "sessions": ["x"]}, "64 lower-case hex digits"),
    ({"suite": SUITE, "sessions": []}, "1 to 1000 distinct session ids"),
    ({"suite": SUITE, "sessions": ["not an id"]}, "1 to 1000 distinct session ids"),
    ({"suite": SUITE, "sessions": [sid(1), sid(1)]}, "1 to 1000 distinct session ids"),
    ({"suite": SUITE, "sessions": [sid(1)], "failed": [sid(2)]}, "each one of `sessions`"),
    ({"suite": SUITE, "sessions": [sid(1)], "passed": 1}, "--suite PATH"),
    ({"sessions": [sid(1)]}, "--suite PATH"),
])
def test_a_verdict_of_the_wrong_shape_is_refused_saying_what_to_send(payload: dict[str, object], words: str) -> None:
    listing = asyncio.run(listing_with((1, "next", True)))
    refused = asyncio.run(refusal(listing, "next", payload))
    assert (refused.status, refused.code) == (422, "invalid_eval_verdict") and words in refused.message
