"""Each SIP-placed call's edge in the store, `home:sip-edge:<session>` (dispatcher/phone/sip_edges.py,
trunk_calls.py): let go only on proof that its edge placed nothing, never outliving that proof, and never
refusing a call it protects nothing for. Two `TrunkCalls` sharing one `FirstClaims` stand for two replicas on
one store; each edge is a scripted client (its answers in order), so nothing here waits on a network
(tests/sip/test_several_edges.py runs real edges)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import aiohttp
import pytest

from dispatcher.errors import ApiError
from dispatcher.outbound.http_client import HttpError, HttpResponse
from dispatcher.phone.edge_record import record_key
from dispatcher.phone.trunk_calls import TrunkCalls, TrunkCallSettings
from dispatcher.store.memory import LocalFirstClaims
from dispatcher.store.unavailable import StoreUnavailable

SECRET = "edge-control-secret-for-the-tests-0123456789"
A, B = "http://10.0.0.1:8081", "http://10.0.0.2:8081"
DESK = "+14155550123"
ORDER = {"session_id": "session-r", "stream_path": "/ws/exotel/tok", "to": "+14155550100",
         "from": "+14155550199", "trunk": "far", "caller": "team-a"}


def answer(status: int, code: str = "") -> HttpResponse:
    body = b'{"session_id": "session-r"}' if status < 300 else (
        b'{"error": {"code": "%s", "message": "m"}}' % code.encode())
    return HttpResponse(status, {}, body)


def refused() -> HttpError:
    """A connection never made: provably nothing sent (`nothing_sent`)."""
    error = HttpError("connection refused (ClientConnectorError)")
    error.__cause__ = aiohttp.ConnectionTimeoutError("no connection within 1 s")
    return error


class Scripted:
    """An edge's control API as the dispatcher's client meets it: each request gets the next of `script`
    (the last repeats); `asked` counts the `POST /calls` it got."""

    def __init__(self, script: Iterable[HttpResponse | HttpError]) -> None:
        self.script = list(script)
        self.asked = 0

    async def request(self, method: str, path: str, **_: Any) -> HttpResponse:
        self.asked += 1
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, HttpError):
            raise step
        return step

    async def aclose(self) -> None:
        return None


def replica(urls: tuple[str, ...], records: Any, edges: dict[str, Scripted]) -> TrunkCalls:
    calls = TrunkCalls(TrunkCallSettings(urls, SECRET), limits=None, records=records,  # type: ignore[arg-type]
                       max_session_seconds=1800, transfer_seconds=3600)
    calls.edges._clients = edges  # type: ignore[assignment]
    return calls


@pytest.mark.parametrize("script", [
    # The first try reached A (a 502 from the TLS proxy in front of it, docs/sip.md), A took the call; the
    # retry within `send` is answered 404 (A's trunks reloaded: its `_taken` check comes after the trunk's).
    [answer(502, ""), answer(404, "unknown_trunk")],
    # A proxy's "the origin did not answer in time" (Cloudflare's 524; any 5xx outside RETRYABLE_STATUSES):
    # the edge may have taken the call, yet `_read` calls it a final refusal.
    [answer(524, "")],
], ids=["refused-after-a-try-that-reached-it", "5xx-outside-retryable"])
async def test_a_refusal_that_does_not_prove_nothing_was_placed_keeps_the_record(
        script: list[HttpResponse]) -> None:
    """A refusal that is not the first request's own answer in the edge's words does not prove nothing was
    placed: the record stays, else the session's retry at another replica (B listed first) finds none and
    places the call at B, the callee rung twice."""
    records = LocalFirstClaims()
    edges = {A: Scripted(script), B: Scripted([answer(202)])}
    first, second = replica((A, B), records, edges), replica((B, A), records, edges)
    with pytest.raises(ApiError):
        await first.hand_over(ORDER)
    kept = await records.held(record_key("session-r"))
    try:
        await second.hand_over(ORDER)
    except ApiError:
        pass
    assert edges[B].asked == 0, f"the retry went to a second edge while the first may hold the call (record: {kept})"
    assert (kept or "").startswith(A), "the record of the edge that may hold the call was let go"


async def placed_at_most_on_retry(calls: TrunkCalls) -> str:
    """The edge `calls` placed the order at: at once, or at its retry (the store answering again); a retry
    refused fails the test, as A, which refuses connections, never got the call."""
    try:
        return await calls.hand_over(ORDER)
    except ApiError:
        pass
    try:
        return await calls.hand_over(ORDER)
    except ApiError as exc:
        pytest.fail(f"A never got the call, yet its retry is refused: {exc.code}: {exc.message}")


class LetGoFailsOnce(LocalFirstClaims):
    """The store blinks once, at a `let_go` (`SipEdges.let_go` suppresses it)."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def let_go(self, what: str, value: str) -> None:
        if not self.failed:
            self.failed = True
            raise StoreUnavailable("the store did not answer: TimeoutError")
        await super().let_go(what, value)


async def test_a_record_whose_let_go_failed_does_not_pin_the_call_to_an_edge_that_provably_got_nothing() -> None:
    """A refused the connection (nothing sent), its record's `let_go` met a store blink. The next `claim` (B)
    reads the hand-over's own record back (its token) and moves it to B, rather than taking it for an
    earlier try's and pinning the call, and every retry, to A, which never got it."""
    records = LetGoFailsOnce()
    edges = {A: Scripted([refused()]), B: Scripted([answer(202)])}
    assert await placed_at_most_on_retry(replica((A, B), records, edges)) == B


class Silent:
    """A store that does not answer."""

    async def first(self, what: str, value: str, seconds: float) -> str:
        raise StoreUnavailable("the store did not answer: ConnectionError")

    async def held(self, what: str) -> str | None:
        raise StoreUnavailable("the store did not answer: ConnectionError")

    async def keep(self, what: str, value: str, seconds: float) -> bool:
        raise StoreUnavailable("the store did not answer: ConnectionError")

    async def let_go(self, what: str, value: str) -> None:
        raise StoreUnavailable("the store did not answer: ConnectionError")


async def test_with_one_edge_a_store_that_does_not_answer_still_places_the_call() -> None:
    """With one edge listed the record cannot change where a retry goes (there is no second edge), and a
    transfer goes to that edge anyway (`SipEdges.holding`): a store blink does not refuse the call (the pace
    and the spent tokens fall back to this replica's memory)."""
    edges = {A: Scripted([answer(202)])}
    calls = replica((A,), Silent(), edges)
    assert await calls.hand_over(ORDER) == A


async def test_a_retry_held_at_an_edge_that_stays_down_names_the_way_out() -> None:
    """A retry whose recorded edge (an earlier try's, which may hold the call) stays down is told that this
    Idempotency-Key is held at that edge, for how long, and what a new key would risk."""
    records = LocalFirstClaims()
    await records.first(record_key("session-r"), f"{A} earlier-try", 2400)
    edges = {A: Scripted([refused()]), B: Scripted([answer(202)])}
    with pytest.raises(ApiError) as held:
        await replica((B, A), records, edges).hand_over(ORDER)
    assert edges[B].asked == 0  # right: A may hold it
    assert held.value.code != "sip_edge_unavailable" and "Idempotency-Key" in held.value.message, held.value.message




async def test_without_an_idempotency_key_a_store_that_does_not_answer_still_places_the_call() -> None:
    """No retry shares a session without an Idempotency-Key: with several edges the record guards nothing, and
    the call goes to the first edge unrecorded (a transfer then goes by the stream's edge)."""
    edges = {A: Scripted([answer(202)]), B: Scripted([answer(202)])}
    calls = replica((A, B), Silent(), edges)
    assert await calls.hand_over(ORDER, keyed=False) == A
    with pytest.raises(ApiError) as refused:
        await calls.hand_over(ORDER)
    assert refused.value.code == "sip_edge_unrecorded" and edges[B].asked == 0


async def test_a_first_refusal_in_the_edge_s_words_lets_the_record_go() -> None:
    """The edge's own 404 to the first request (its trunk unknown) proves it placed nothing: the record goes,
    and the session's retry may go to another edge."""
    records = LocalFirstClaims()
    edges = {A: Scripted([answer(404, "unknown_trunk")]), B: Scripted([answer(202)])}
    with pytest.raises(ApiError) as refused:
        await replica((A, B), records, edges).hand_over(ORDER)
    assert (refused.value.status, refused.value.code) == (404, "sip_edge_refused")
    assert await records.held(record_key("session-r")) is None
    assert await replica((B, A), records, edges).hand_over(ORDER) == B


async def test_a_record_or_a_stream_naming_a_listed_edge_in_another_case_is_that_edge() -> None:
    """A host's case means nothing: a record (written before names were lower-cased) or a stream's `edge_url`
    naming an edge in capitals is that edge, never an unlisted one."""
    named, shouted = "http://edge-c.internal:8081", "http://EDGE-C.Internal:8081"
    records = LocalFirstClaims()
    await records.first(record_key("session-r"), f"{shouted} earlier-try", 2400)
    edges = {named: Scripted([answer(202)]), B: Scripted([answer(202)])}
    calls = replica((B, named), records, edges)
    assert await calls.hand_over(ORDER) == named and edges[B].asked == 0
    assert calls.edges.holding(shouted + "/") == named


async def test_a_retry_recorded_at_an_edge_no_longer_listed_names_the_way_out_but_not_a_new_key() -> None:
    """That edge may hold the call: the answer says to list it again, and that a new Idempotency-Key may ring
    the callee twice, rather than inviting one."""
    records = LocalFirstClaims()
    await records.first(record_key("session-r"), "http://10.0.0.9:8081 earlier-try", 2400)
    edges = {A: Scripted([answer(202)]), B: Scripted([answer(202)])}
    with pytest.raises(ApiError) as unlisted:
        await replica((A, B), records, edges).hand_over(ORDER)
    assert unlisted.value.code == "sip_edge_unlisted" and edges[A].asked == edges[B].asked == 0
    assert "List that edge in SIP_EDGE_URL again" in unlisted.value.message
    assert "or place the call with another Idempotency-Key" not in unlisted.value.message


async def test_a_replica_without_a_store_whose_memory_is_full_says_so_rather_than_blame_redis_url() -> None:
    """Without REDIS_URL the records are this replica's memory: full, the call is refused naming that, not a
    store that "did not answer"."""
    edges = {A: Scripted([answer(202)]), B: Scripted([answer(202)])}
    with pytest.raises(ApiError) as refused:
        await replica((A, B), LocalFirstClaims(most=0), edges).hand_over(ORDER)
    assert refused.value.code == "sip_edge_unrecorded" and edges[A].asked == 0
    assert "no REDIS_URL is set" in refused.value.message and "did not answer" not in refused.value.message


class ReplyLost(LocalFirstClaims):
    """A store that applies the first `lost` writes and loses each one's reply (a timeout or a reset after the
    `SET`), as `StoreFirstClaims` raises then: the record is there, its writer told the store did not answer."""

    def __init__(self, lost: int = 1) -> None:
        super().__init__()
        self.lost = lost

    async def first(self, what: str, value: str, seconds: float) -> str:
        recorded = await super().first(what, value, seconds)
        if self.lost:
            self.lost -= 1
            raise StoreUnavailable("the store did not answer: TimeoutError (the reply lost after the write)")
        return recorded


async def test_a_record_whose_reply_was_lost_is_read_back_and_does_not_pin_the_session_to_a_gone_edge() -> None:
    """The record of A landed but its reply was lost; A is gone (it refuses connections). Taken for "not
    recorded", the call was refused and the record stayed, pinning every retry to A, which never got the
    call. Read back, it is this hand-over's own: A is asked, provably gets nothing, and the call goes to B."""
    records = ReplyLost()
    edges = {A: Scripted([refused()]), B: Scripted([answer(202)])}
    assert await placed_at_most_on_retry(replica((A, B), records, edges)) == B
    assert (await records.held(record_key("session-r")) or "").startswith(B)


async def test_a_lost_reply_read_back_keeps_the_earlier_record_that_won() -> None:
    """First write wins: an earlier try's record (A may hold the call) read back after this write's reply was
    lost is the record, and the retry goes to A alone, never to B."""
    records = ReplyLost()
    await LocalFirstClaims.first(records, record_key("session-r"), f"{A} earlier-try", 2400)
    edges = {A: Scripted([answer(202)]), B: Scripted([answer(202)])}
    assert await replica((B, A), records, edges).hand_over(ORDER) == A
    assert edges[B].asked == 0
