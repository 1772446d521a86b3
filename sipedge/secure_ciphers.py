"""The TLS 1.2 cipher suites the edge offers: forward-secret key exchange only (ECDHE or DHE, never anonymous), so a
recorded call's SDES keys, which ride inside TLS, stay secret when the edge's private key leaks later.
PJSUA2 lists the suites of the wheel's OpenSSL 1.0.2 by IANA number only; Python's own OpenSSL names
each number's key exchange."""

from __future__ import annotations

import ssl
from collections.abc import Iterable

_FORWARD_SECRET = frozenset({"kx-ecdhe", "kx-dhe"})
_IANA = 0xFFFF  # OpenSSL's id is 0x0300 followed by the suite's IANA number; PJSIP keeps the number


def forward_secret(available: Iterable[int]) -> list[int]:
    """The suites of `available` (PJSIP's ids, IANA numbers) whose key exchange is ECDHE or DHE."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers("ALL:@SECLEVEL=0")
    secret = {c["id"] & _IANA for c in context.get_ciphers()
              if c.get("kea") in _FORWARD_SECRET and c.get("auth") != "auth-null" and c.get("protocol") != "TLSv1.3"}
    return [suite for suite in available if suite & _IANA in secret]
