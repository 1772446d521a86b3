"""Session ids: random, or derived from (caller, Idempotency-Key) so a retry finds its session.

24 lowercase hex characters fit every provider's naming rules (ECS clientToken ≤ 64 chars,
Daily room names, Fly machine names, and GCE instance names once prefixed with a letter).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from typing import Any

SESSION_ID = re.compile(r"^[0-9a-f]{24}$")
# RFC-draft Idempotency-Key: an opaque string; keep it printable and bounded.
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def new_session_id(caller: str, idempotency_key: str | None) -> str:
    if idempotency_key is None:
        return secrets.token_hex(12)
    return hashlib.sha256(f"{caller}\x00{idempotency_key}".encode()).hexdigest()[:24]


def body_digest(body: Mapping[str, Any]) -> str:
    """A fingerprint of the client's body; equal JSON objects give equal digests."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def is_session_id(value: str) -> bool:
    return SESSION_ID.fullmatch(value) is not None
