"""What a voicefleet VM's labels say, and finding a session's VM by them.

A session's VM is named for the session (`<prefix>-<session id>`), except a reserve VM claimed
for it (gce/reserve.py): that one keeps its bot's name (`<prefix>-idle-<bot id>`) and carries the
session in its labels. So when no VM is named for a session, one `instances.list` with a label
filter finds the claimed one; its name is then remembered, per replica, so later calls go to it
directly (another replica pays the one look-up too).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from dispatcher.machines.base import MachinesError
from dispatcher.outbound.http_client import HttpResponse
from dispatcher.recent import Recent

LABEL_SESSION, LABEL_DIGEST = "voicefleet-session", "voicefleet-body"
LABEL_TRANSPORT = "voicefleet-transport"  # "daily" or "webrtc" (absent: daily)
LABEL_RELEASE = "voicefleet-release"  # the session's release (a release name is a label value as it is)
# A claimed reserve VM's claim time (epoch seconds): its session's start, for the reaper, since
# creationTimestamp is when the VM began to wait.
LABEL_CLAIMED = "voicefleet-claimed"
IDLE_INFIX = "idle-"  # a reserve VM is `<prefix>-idle-<bot id>` (gce/reserve.py), kept when claimed
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{1,63}")


def label_value(text: str) -> bool:
    """Whether `text` can be a label's value (and so quoted in a filter or a path as it is)."""
    return _LABEL_VALUE.fullmatch(text) is not None


Request = Callable[..., Awaitable[HttpResponse]]  # GceMachines._request: (method, path, **kw)
Refusal = Callable[[HttpResponse, str], MachinesError]  # GceMachines._failed: (response, what)


class ClaimedVms:
    """Session → name of the claimed reserve VM that serves it, as far as this replica knows."""

    def __init__(self, request: Request, refusal: Refusal) -> None:
        self._request = request
        self._refusal = refusal
        self._names: Recent[str, str] = Recent()

    def name(self, session_id: str) -> str | None:
        return self._names.get(session_id)

    def remember(self, session_id: str, name: str) -> None:
        """A claim made here: later calls go to the VM at once, with no look-up."""
        self._names[session_id] = name

    async def find(self, session_id: str) -> dict[str, Any] | None:
        """The VM labelled with the session (one `instances.list`), or None. Paid only when the VM
        named for the session does not exist: a warm session another replica claimed, or an ended one."""
        if not label_value(session_id):
            return None  # not a label value: no VM can carry it (and nothing to quote in the filter)
        params = {"filter": f"labels.{LABEL_SESSION} = {session_id}", "maxResults": "2"}
        response = await self._request("GET", "/instances", params=params)
        if response.status_code != 200:
            raise self._refusal(response, f"find the instance labelled {session_id}")
        items = response.json().get("items") or []
        if not items:
            return None
        self._names[session_id] = str(items[0]["name"])
        return dict(items[0])
