"""`GET /sessions?region=NAME`: the region a listing is filtered by, as `status` names them.

A deployment of one region (no `REGION`) calls itself `default` in `status`, while its sessions carry
no region: `region=default` there is every session, not none. A name that is no region of this
deployment is refused with the names it has, rather than answered with an empty list.
"""

from __future__ import annotations

from collections.abc import Collection

from dispatcher.api.status_view import ONE_REGION
from dispatcher.errors import ApiError


def region_filter(raw: str | None, here: str, peers: Collection[str]) -> str | None:
    """The region to keep sessions of (None: every one), or 400 naming this deployment's regions."""
    if raw is None:
        return None
    if not here:  # one region: its name is `default`, its sessions carry none
        if raw == ONE_REGION:
            return None
        known = [ONE_REGION]
    else:
        if raw == here or raw in peers:
            return raw
        known = sorted({here, *peers})
    raise ApiError(400, "unknown_region", f"region: {raw[:64]!r} is no region of this deployment; its regions: "
                   f"{', '.join(known)} (as `voicefleet status` names them)", extra={})
