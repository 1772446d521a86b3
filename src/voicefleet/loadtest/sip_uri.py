"""Where a SIP call goes: `sip:NUMBER@HOST[:PORT]`, the SIP edge's address and a number one of its
trunks serves (docs/sip.md), checked before any call so that a typo is a clear error, not a call."""

from __future__ import annotations

import re
from dataclasses import dataclass

SESSION_HEADER = "X-Voicefleet-Session-Id"  # the edge's 200 OK names the call's session in it
DEFAULT_PORT = 5060
EXAMPLE = "sip:+14155550199@127.0.0.1:5060"
# The caller speaks SIP over UDP on IPv4, as the edge does: a host name or an IPv4 address.
_URI = re.compile(r"^sip:(?P<user>[+0-9A-Za-z._*#-]{1,64})@(?P<host>[A-Za-z0-9.-]{1,253})(?::(?P<port>[0-9]{1,5}))?$")


@dataclass(frozen=True)
class SipUri:
    user: str
    host: str
    port: int

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@{self.host}:{self.port}"


def sip_uri(text: str) -> SipUri:
    """The URI parsed, or ValueError saying what a good one looks like."""
    found = _URI.match(text.strip())
    port = int(found.group("port") or DEFAULT_PORT) if found else 0
    if found is None or not 0 < port < 65536:
        raise ValueError(f"{text!r} is not a SIP URI of the edge: write sip:NUMBER@HOST:PORT, e.g. {EXAMPLE} "
                         f"(the number one of its trunks serves; HOST a name or an IPv4 address, UDP)")
    return SipUri(found.group("user"), found.group("host"), port)
