"""What the region holding a spilled call's session makes of a signed answer from the region its edge reached:
the edge's outcome, the edge's refusal as its own edge's would read, that region's own refusal passed on by name,
or, when an earlier try may have reached it, an outcome nobody knows. The answers themselves, end to end, are
tests/dispatcher/regions/test_spilled_sip_transfer.py's."""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.errors import ApiError
from dispatcher.phone.spilled_transfers import read_answer

DESK = "+14155550123"


def refusal(code: str, message: str = "why", **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "edge_asked": False, **extra}}


def refused(status: int, data: Any, reached: bool = False, retry_after: float | None = None) -> ApiError:
    with pytest.raises(ApiError) as raised:
        read_answer("eu", status, data, DESK, retry_after, reached)
    return raised.value


def test_the_edges_outcome_is_the_transfers() -> None:
    handed = read_answer("eu", 200, {"how": "bridged", "to": f"sip:{DESK}@trunk", "sip_status": 200}, DESK, None,
                         reached=True)
    assert (handed.how, handed.to, handed.sip_status) == ("bridged", f"sip:{DESK}@trunk", 200)


@pytest.mark.parametrize(("status", "code", "client_status"), [
    (403, "region_not_holding", 409),  # the regions disagree on the session: the client's key is not refused
    (409, "spilled_call_unknown", 409),
    (409, "sip_edge_not_here", 409),
    (409, "transfer_window_too_small", 409),
    (403, "target_not_allowed", 403),  # the person, not on that region's PHONE_TRANSFER_TARGETS
    (422, "invalid_request", 502),  # this region's ask, refused as malformed: the releases disagree
    (503, "sip_edge_unrecorded", 503),
])
def test_the_call_regions_refusal_is_passed_on_by_name(status: int, code: str, client_status: int) -> None:
    error = refused(status, refusal(code, "the check's own words"), retry_after=2.0 if status == 503 else None)
    assert (error.status, error.code, error.extra) == (client_status, code, {"region": "eu"})
    assert error.message.startswith(f"region eu, whose SIP edge holds this call, refused the transfer ({code}): "
                                    "the check's own words") and error.message.endswith("nothing was transferred")
    assert error.retry_after == (2.0 if status == 503 else None)


def test_a_refusal_after_a_try_that_may_have_reached_the_region_leaves_the_outcome_unknown() -> None:
    """The first try may have handed the call over (its answer lost); the region's refusal of a later one says
    nothing of it."""
    error = refused(503, refusal("sip_edge_unrecorded"), reached=True)
    assert (error.status, error.code, error.extra) == (504, "transfer_outcome_unknown", {"outcome": "unknown"})


def test_the_edges_own_refusal_passes_as_this_regions_edge_would_give_it() -> None:
    """What the region's edge answered (no `edge_asked: false`) is the edge's word, after a retry too: the edge
    answers a retried request id with its first outcome."""
    error = refused(409, {"error": {"code": "no_live_call", "message": "no call"}}, reached=True)
    assert (error.status, error.code, error.message) == (409, "no_live_call", "no call")
    unknown = refused(504, {"error": {"code": "transfer_outcome_unknown", "message": "?", "outcome": "unknown"}})
    assert (unknown.status, unknown.code, unknown.extra) == (504, "transfer_outcome_unknown", {"outcome": "unknown"})


@pytest.mark.parametrize(("status", "data"), [(200, {"how": "teleported"}), (200, refusal("region_not_holding")),
                                              (409, None), (409, {"error": {"message": "no code"}})])
def test_a_signed_answer_that_says_neither_outcome_nor_refusal_leaves_the_outcome_unknown(status: int,
                                                                                          data: Any) -> None:
    error = refused(status, data)
    assert (error.status, error.code) == (504, "transfer_outcome_unknown")
