"""An eval verdict is checked against the dispatcher's own session index before it is recorded: the
counts are the dispatcher's, and each session must be an eval's session pinned to that release and
not one the dispatcher saw fail counted as passed, nor one started before the release's last
verdict (the listing and its memory index, as one local
dispatcher keeps them; the real processes' test is tests/releases/test_eval_gate.py)."""

from __future__ import annotations

import asyncio
import time

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


async def refusal(listing: SessionListing, name: str, payload: dict[str, object],
                  after: float | None = None) -> ApiError:
    with pytest.raises(ApiError) as refused:
        await verified(listing, name, payload, "admin-1", after)
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


async def test_a_session_started_before_the_releases_last_verdict_is_refused_so_no_run_is_sent_twice() -> None:
    listing = await listing_with((1, "next", True), (2, "next", True))
    await asyncio.sleep(0.01)  # an entry's `created` is rounded to the millisecond: the verdict is clearly after
    recorded_at = time.time()  # a failing verdict of calls 1 and 2 was recorded then
    await asyncio.sleep(0.01)
    listing.opened(sid(3), CALLER, "next", "webrtc", eval=True)  # a later run's call
    await listing.settled()
    refused = await refusal(listing, "next", {"suite": SUITE, "sessions": [sid(1), sid(3)]}, after=recorded_at)
    assert refused.extra["sessions"] == {sid(1): "started before next's last recorded verdict: a verdict is a "
                                                 "later run's calls"}
    counted = await verified(listing, "next", {"suite": SUITE, "sessions": [sid(3)]}, "admin-1", recorded_at)
    assert (counted.passed, counted.runs) == (1, 1)
