"""How long a trunk's inbound digest password must be (docs/sip.md#inbound-digest). Over UDP every digest response
crosses the network in clear, MD5 over the password and values all known to whoever captured it, so one response is
tried offline at GPU speed (billions a second): only a long random password resists that. Both the edge's loader
and the stacks' check refuse a shorter one, in these words."""

from __future__ import annotations

INBOUND_PASSWORD_MIN_CHARS = 20  # openssl rand -base64 24: 32 characters, 192 random bits


def short_inbound_password(password: str) -> str | None:
    """Why `password` is too short for an inbound credential, or None when it is long enough."""
    if len(password) >= INBOUND_PASSWORD_MIN_CHARS:
        return None
    return (f"is {len(password)} characters, under {INBOUND_PASSWORD_MIN_CHARS}: a captured digest response is "
            "cracked offline from a short one; make one with `openssl rand -base64 24` (docs/sip.md#inbound-digest)")
