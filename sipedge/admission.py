"""Who may call: an INVITE from a source no trunk allows is 403, one to a number no trunk serves is
404, before any session is asked for. The number is the user part of the To URI, where trunks put
the number dialled (Twilio, Telnyx and PBXs alike)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from sipedge.config import Trunk

_USER = re.compile(r"^(?:.*<)?sips?:([^@;>]+)@")  # the user part of a name-addr or addr-spec


@dataclass(frozen=True)
class Admitted:
    trunk: Trunk
    number: str
    api_key: str | None
    release: str | None = None  # the release its calls run; None: the dispatcher's choice


@dataclass(frozen=True)
class Refused:
    status: int  # the SIP answer: 403 or 404
    reason: str


def source_host(address: str) -> str:
    """`127.0.0.1:5070` or `[::1]:5070` (PJSIP's source address) → the host alone."""
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or address.startswith("[") else address
    return host.strip("[]")


def dialled_number(uri: str) -> str:
    match = _USER.match(uri.strip())
    return match.group(1) if match else ""


def admit(trunks: tuple[Trunk, ...], source: str, to_uri: str) -> Admitted | Refused:
    try:
        host = ipaddress.ip_address(source_host(source))
    except ValueError:
        return Refused(403, "source address unreadable")
    allowed = [t for t in trunks if any(host in network for network in t.sources)]
    if not allowed:
        return Refused(403, "no trunk allows this source")
    number = dialled_number(to_uri)
    for trunk in allowed:
        if number in trunk.api_keys:
            return Admitted(trunk, number, trunk.api_keys[number], trunk.releases.get(number))
    return Refused(404, "no trunk serves this number")
