"""The `transport` a bot host reports with its services' use: how its WebRTC call's media went, so the
dispatcher can price the TURN relay's share (dispatcher/usage/relay_cost.py).

`{"local_candidate", "remote_candidate": "host"|"srflx"|"prflx"|"relay", "bytes_sent",
"bytes_received", "packets_sent", "packets_received"}`: the selected ICE candidate pair's two types
and what the connection carried, as aiortc's DTLS transport counts it (bot/transport_meter.py). It
goes with the `ended` report and with each `usage.so_far` request (botchannel/usage.py), the whole
count so far each time. A bot is trusted no further than with its usage: each count is a finite
number from 0 to `MAX_COUNT`, the types are the four ICE names, and nothing else is taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botchannel.usage import MAX_COUNT, UsageError, in_range

CANDIDATE_TYPES = ("host", "srflx", "prflx", "relay")  # RFC 8445 §5.1.1's, as aioice names them
TYPES = ("local_candidate", "remote_candidate")
COUNTS = ("bytes_sent", "bytes_received", "packets_sent", "packets_received")


def parse_transport(value: object) -> dict[str, Any]:
    """The report's `transport`, checked; raises `UsageError` naming the first thing wrong."""
    if not isinstance(value, Mapping):
        raise UsageError("transport must be an object")
    unknown = sorted(set(value) - set(TYPES) - set(COUNTS))
    if unknown:
        raise UsageError(f"transport: unknown field {unknown[0]!r}; the fields are {', '.join(TYPES + COUNTS)}")
    parsed: dict[str, Any] = {}
    for name in TYPES:
        kind = value.get(name)
        if kind not in CANDIDATE_TYPES:
            raise UsageError(f"transport.{name} must be one of {', '.join(CANDIDATE_TYPES)}")
        parsed[name] = kind
    for name in COUNTS:
        count = value.get(name, 0)
        if not in_range(count):
            raise UsageError(f"transport.{name} must be a number from 0 to {MAX_COUNT:g}")
        parsed[name] = count
    return parsed


def relayed(transport: Mapping[str, Any]) -> bool:
    """Whether the selected pair goes through a TURN relay: either of its candidates is one."""
    return "relay" in (transport.get("local_candidate"), transport.get("remote_candidate"))
