"""Who may call: an INVITE from a source no trunk allows is 403, one to a number no trunk serves is
404, before any session is asked for. The number is the user part of the To URI, where trunks put
the number dialled (Twilio, Telnyx and PBXs alike). An INVITE whose inbound digest credential the front
checked is its credential's trunk's, whatever its source: only that trunk's numbers are served to it."""

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


def admit(trunks: tuple[Trunk, ...], source: str, to_uri: str, credential: str | None = None) -> Admitted | Refused:
    """`credential`: the inbound digest username the edge's front checked on the INVITE (None: none was)."""
    try:
        host = ipaddress.ip_address(source_host(source))
    except ValueError:
        return Refused(403, "source address unreadable")
    if credential is not None:
        allowed = [t for t in trunks if t.inbound_digest is not None and t.inbound_digest.username == credential]
    else:
        allowed = [t for t in trunks if any(host in network for network in t.sources)]
    if not allowed:
        return Refused(403, "no trunk allows this source")
    number = dialled_number(to_uri)
    for trunk in allowed:
        if number in trunk.api_keys:
            return Admitted(trunk, number, trunk.api_keys[number], trunk.releases.get(number))
    return Refused(404, "no trunk serves this number")


def dialog_peer(trunk: Trunk, admitted_from: str, source: str) -> bool:
    """Whether a request within a call admitted from `admitted_from` (a host) comes from the call's own trunk:
    from its sources, or, for a trunk admitted by its credential, from the host its INVITE came from."""
    try:
        host = ipaddress.ip_address(source_host(source))
    except ValueError:
        return False
    return any(host in network for network in trunk.sources) or host == ipaddress.ip_address(admitted_from)
