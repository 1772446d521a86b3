"""A spilled call's transfer refused by the region its edge reached, named by the check that refused it, and
passed on by the region holding the session to its client.

That region refuses, before it asks its edge: a region that does not hold the session (`region_not_holding`),
a call it recorded no edge for (`spilled_call_unknown`: not started through it, or its record expired), an
edge that is not one of its own (`sip_edge_not_here`: it lists none, or the edge left its SIP_EDGE_URL), too
little of the asker's wait left (`transfer_window_too_small`), a person its PHONE_TRANSFER_TARGETS does not
allow, an ask out of shape (`invalid_request`), and anything while its store does not answer (503). Each such
refusal says `"edge_asked": false`, signed with the rest, so the asker knows that this try handed nothing
over; what its edge answered (sip_transfers.py) passes on as the asker's own edge's answer would.

The asker passes a refusal on with its code and status, and a message naming the region and saying nothing
was transferred; but `region_not_holding` is 409 (the regions disagree on the session: the client's key is not
what was refused) and `invalid_request` 502 (the releases disagree on the ask). That holds only when no earlier
try may have reached the region: that try's outcome is still unknown (dispatcher/phone/spilled_transfers.py).
"""

from __future__ import annotations

from typing import Any

from dispatcher.errors import ApiError

EDGE_ASKED = "edge_asked"
NOT_HOLDING = "region_not_holding"
CALL_UNKNOWN = "spilled_call_unknown"
EDGE_NOT_HERE = "sip_edge_not_here"
WINDOW_TOO_SMALL = "transfer_window_too_small"
INVALID_ASK = "invalid_request"
CLIENT_STATUS = {NOT_HOLDING: 409, INVALID_ASK: 502}


def error_of(failed: ApiError, edge_asked: bool) -> dict[str, Any]:
    """The signed answer's `error`: a refusal made before the edge was asked says so."""
    error = {"code": failed.code, "message": failed.message, **(failed.extra or {})}
    return error if edge_asked else {**error, EDGE_ASKED: False}


def refused_unasked(error: dict[str, Any]) -> bool:
    """Whether a signed `error` is the region's own refusal, made before it asked its edge."""
    return error.get(EDGE_ASKED) is False


def passed_on(region: str, status: int, error: dict[str, Any], retry_after: float | None) -> ApiError:
    """`region`'s refusal (`refused_unasked`) as the asking region's client is told it."""
    code = str(error["code"])
    extra = {k: v for k, v in error.items() if k not in ("code", "message", EDGE_ASKED)}
    message = (f"region {region}, whose SIP edge holds this call, refused the transfer ({code}): "
               f"{str(error.get('message', ''))[:500]}; nothing was transferred")
    return ApiError(CLIENT_STATUS.get(code, status), code, message, retry_after=retry_after,
                    extra={**extra, "region": region})
