"""Review of `home:sip-edge:<session>` (dispatcher/phone/sip_edges.py, trunk_calls.py): where the record is let go
without proof that its edge placed nothing, where it outlives that proof, and where it refuses a call it
protects nothing for. Two `TrunkCalls` sharing one `FirstClaims` stand for two replicas on one store; each
edge is a scripted client (its answers in order), so nothing here waits on a network.

These tests fail on the reviewed code (xfail, strict: drop the mark with the fix); each names its finding."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import aiohttp
import pytest

from dispatcher.errors import ApiError
from dispatcher.outbound.http_client import HttpError, HttpResponse
from dispatcher.phone.sip_edges import RECORD
from dispatcher.phone.sip_transfers import SipTransfers
from dispatcher.phone.transfer_allow import parse_transfer_targets
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.phone.transfers import Transfers
from dispatcher.phone.trunk_calls import TrunkCalls, TrunkCallSettings
from dispatcher.store.memory import LocalFirstClaims
from dispatcher.store.unavailable import StoreUnavailable
from sipedge import stream_frames

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
                       max_session_seconds=1800)
    calls.edges._clients = edges  # type: ignore[assignment]
    return calls


@pytest.mark.xfail(strict=True, reason="review_edgebind finding 1: `_Refused` lets the record go though a try may "
                   "have reached the edge; the retry rings the callee again through B")
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
    """Finding 1: `_Refused` lets the record go though `reached` says a try may have reached the edge. The
    session then ends `not_placed`; its retry at another replica (B listed first) finds no record and
    places the call at B: the callee rung twice."""
    records = LocalFirstClaims()
    edges = {A: Scripted(script), B: Scripted([answer(202)])}
    first, second = replica((A, B), records, edges), replica((B, A), records, edges)
    with pytest.raises(ApiError):
        await first.hand_over(ORDER)
    kept = await records.held(RECORD + "session-r")
    try:
        await second.hand_over(ORDER)
    except ApiError:
        pass
    assert edges[B].asked == 0, f"the retry went to a second edge while the first may hold the call (record: {kept})"
    assert (kept or "").startswith(A), "the record of the edge that may hold the call was let go"


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


@pytest.mark.xfail(strict=True, reason="review_edgebind finding 2: a try's own record, its let_go lost, read back "
                   "as an earlier try's: the call pinned to an edge that got nothing")
async def test_a_record_whose_let_go_failed_does_not_pin_the_call_to_an_edge_that_provably_got_nothing() -> None:
    """Finding 2: A refused the connection (nothing sent), its record's `let_go` met a store blink. The next
    `claim` (B) reads this try's own record back, takes it for an earlier try's (`mine=False`), asks A
    again as the last edge and gives up; and every retry for MAX_SESSION_SECONDS + 10 min goes to A alone,
    answered `503 sip_edge_unavailable ... try again`, though no try ever reached A."""
    records = LetGoFailsOnce()
    edges = {A: Scripted([refused()]), B: Scripted([answer(202)])}
    calls = replica((A, B), records, edges)
    try:
        placed: str | None = await calls.hand_over(ORDER)
    except ApiError:
        placed = None
    if placed is None:  # the store is back: the retry
        try:
            placed = await calls.hand_over(ORDER)
        except ApiError as exc:
            pytest.fail(f"A never got the call, yet its retry is refused: {exc.code}: {exc.message}")
    assert placed == B


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


@pytest.mark.xfail(strict=True, reason="review_edgebind finding 3: one edge, a store blink: every trunk call refused")
async def test_with_one_edge_a_store_that_does_not_answer_still_places_the_call() -> None:
    """Finding 3: with one edge listed the record cannot change where a retry goes (there is no second edge),
    and a transfer goes to that edge anyway (`SipEdges.holding`); yet a store blink refuses every trunk
    call `503 sip_edge_unrecorded`. Before edgebind a single-edge deployment placed calls through a store
    outage (the pace and the spent tokens fall back to this replica's memory)."""
    edges = {A: Scripted([answer(202)])}
    calls = replica((A,), Silent(), edges)
    assert await calls.hand_over(ORDER) == A


@pytest.mark.xfail(strict=True, reason="review_edgebind finding 4: a retry held at a down edge is told only "
                   "`sip_edge_unavailable`, try again")
async def test_a_retry_held_at_an_edge_that_stays_down_names_the_way_out() -> None:
    """Finding 4: a retry whose recorded edge (an earlier try's, which may hold the call) stays down is
    answered `sip_edge_unavailable`, "try again", for as long as the record lives (MAX_SESSION_SECONDS and
    10 minutes): nothing tells the client that this Idempotency-Key is held at that edge, nor what to do."""
    records = LocalFirstClaims()
    await records.first(RECORD + "session-r", f"{A} earlier-try", 2400)
    edges = {A: Scripted([refused()]), B: Scripted([answer(202)])}
    with pytest.raises(ApiError) as held:
        await replica((B, A), records, edges).hand_over(ORDER)
    assert edges[B].asked == 0  # right: A may hold it
    assert held.value.code != "sip_edge_unavailable" and "Idempotency-Key" in held.value.message, held.value.message


class StoreReads(LocalFirstClaims):
    """A store's read yields to the event loop, as a redis GET does (`LocalFirstClaims.held` never does)."""

    async def held(self, what: str) -> str | None:
        await asyncio.sleep(0.05)
        return await super().held(what)


class EdgeTransfers(Scripted):
    """An edge's `POST /calls/<session>/transfer`: the first is handed over once `done` is set; one asked while
    it is under way is refused `409 already_transferring`, as sipedge/control.py `_transfer` answers."""

    def __init__(self) -> None:
        super().__init__([answer(202)])
        self.done = asyncio.Event()
        self.under_way = False

    async def request(self, method: str, path: str, **_: Any) -> HttpResponse:
        self.asked += 1
        if self.under_way:
            return answer(409, "already_transferring")
        self.under_way = True
        await self.done.wait()
        return HttpResponse(200, {}, b'{"session_id": "session-t", "how": "referred", "to": "%s", "sip_status": 202}'
                            % DESK.encode())


@pytest.mark.xfail(strict=True, reason="review_edgebind finding 5: `await holding()` between the check and "
                   "`transferring = True`: two transfers pass, the loser resets `transferring` mid-transfer")
async def test_a_second_transfer_asked_while_the_store_is_read_is_refused_here_and_leaves_the_first_alone() -> None:
    """Finding 5: `Transfers._through_edge` now awaits the store (`SipTransfers.holding` -> `SipEdges.recorded`)
    between `_check_transferable` and `call.transferring = True`; before edgebind nothing yielded there. Two
    transfers of one call (a client's retry after its own timeout, the bot's tool and an API call) both pass
    the check and both reach the edge; the edge refuses the second 409, and its `_not_transferred` sets
    `transferring` False while the first is under way: the carrier's stop that the transfer causes is then
    taken for the caller's hang-up (`heard_hang_up`), and a third transfer passes the check."""
    records = StoreReads()
    sip = SipTransfers(TrunkCallSettings((A, B), SECRET), records)
    edge = EdgeTransfers()
    sip.edges._clients = {A: edge, B: Scripted([answer(404, "no_call")])}  # type: ignore[dict-item]
    await records.first(RECORD + "session-t", f"{A} placing-try", 2400)  # an outbound call placed at A
    transfers = Transfers(None, None, parse_transfer_targets(DESK), sip=sip)
    frames = stream_frames.handshake("stream-1", "call-1", "+14155550199", "+14155550100", A)
    call = transfers.opened("session-t", "exotel", None, [{"type": "websocket.receive", "text": f} for f in frames])
    first = asyncio.create_task(transfers.transfer(call, TransferTarget(DESK)))
    second = asyncio.create_task(transfers.transfer(call, TransferTarget(DESK)))
    with pytest.raises(ApiError) as refused:
        await second
    under_way = call.transferring
    edge.done.set()
    await first
    assert refused.value.code == "already_transferring"
    assert edge.asked == 1, "the second transfer passed the dispatcher's check and reached the edge"
    assert under_way, "the refused second transfer marked the first, still under way, as not transferring"
