"""What the dispatcher makes of an edge's refusal (dispatcher/phone/trunk_calls.py `_read`): a named code
whatever the edge (or a proxy in front of it) wrote, its words as one bounded printable line, and a trunk
the edge calls inbound-only re-read from its list rather than offered again from the dispatcher's."""

from __future__ import annotations

import json
import time

import pytest

from dispatcher.errors import ApiError
from dispatcher.outbound.http_client import HttpResponse
from dispatcher.phone.trunk_calls import TrunkInfo
from dispatcher.store.memory import LocalFirstClaims
from tests.dispatcher.phone.test_sip_edge_records import ORDER, A, Scripted, replica


def _refusal(status: int, error: object) -> HttpResponse:
    return HttpResponse(status, {}, json.dumps({"error": error}).encode())


@pytest.mark.parametrize("error", [{"message": "busy elsewhere"}, {"code": "", "message": "x"},
                                   {"code": "Not A Code\n", "message": "x"}], ids=["none", "empty", "not-a-code"])
async def test_a_409_without_a_code_of_the_edge_s_is_named_sip_edge_conflict(error: dict[str, str]) -> None:
    calls = replica((A,), LocalFirstClaims(), {A: Scripted([_refusal(409, error)])})
    with pytest.raises(ApiError) as refused:
        await calls.trunk("far")
    assert (refused.value.status, refused.value.code) == (409, "sip_edge_conflict")


async def test_the_edge_s_words_reach_the_caller_as_one_bounded_printable_line() -> None:
    words = "line one\nforged: record\u202e" + "x" * 5000
    calls = replica((A,), LocalFirstClaims(), {A: Scripted([_refusal(409, {"code": "taken", "message": words})])})
    with pytest.raises(ApiError) as refused:
        await calls.trunk("far")
    message = refused.value.message
    assert refused.value.code == "taken"
    assert "\n" not in message and "\u202e" not in message and "line one\\nforged" in message
    assert len(message) < 400


async def test_an_inbound_only_refusal_of_a_call_re_reads_the_edge_s_trunks() -> None:
    """The dispatcher's list said `far` places calls; the edge (its file changed since) answers 409
    trunk_inbound_only. The next call through `far` asks the edge's list again, as after a 404, and is refused
    by the dispatcher itself, before the trunk's pace is spent or the edge is asked to place it."""
    listing = HttpResponse(200, {}, json.dumps({"trunks": [], "inbound_only": ["far"]}).encode())
    edge = Scripted([_refusal(409, {"code": "trunk_inbound_only", "message": "far takes calls in only"}), listing])
    calls = replica((A,), LocalFirstClaims(), {A: edge})
    calls._trunks, calls._trunks_at = {"far": TrunkInfo("far", 1.0)}, time.monotonic()
    with pytest.raises(ApiError) as placed:
        await calls.hand_over(ORDER)
    assert (placed.value.status, placed.value.code) == (409, "trunk_inbound_only")
    with pytest.raises(ApiError) as again:
        await calls.trunk("far")
    assert (again.value.status, again.value.code) == (409, "trunk_inbound_only")
    assert edge.asked == 2, "the trunk was offered from the dispatcher's stale list, not the edge's"
