"""Session ids: random, or derived from (caller, Idempotency-Key) so a retry finds its session;
either way bound to the API key that started the session.

    <16 hex: random, or HMAC(owner key, Idempotency-Key)> <8 hex: HMAC(owner key, the first 16)>

With several regions the first 4 of the 16 name the region that holds the session
(dispatcher/regions/config.py, `region_tag`), so any region knows where to send a request for it.

The owner key is derived from the caller's API key (dispatcher/api/auth.py), so only that key's
holder can name its sessions: another key's read, offer or stop of the id is a 404 answered
without asking the provider anything, and so is a made-up id. Keyless local mode has a random
owner key per run, so its ids are not predictable either. 24 lowercase hex characters fit every
provider's naming rules (ECS clientToken ≤ 64 chars, Daily room names, Fly machine names, and
GCE instance names once prefixed with a letter).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dispatcher.regions.config import TAG_CHARS, region_tag

SESSION_ID = re.compile(r"^[0-9a-f]{24}$")
# RFC-draft Idempotency-Key: an opaque string; keep it printable and bounded.
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class Caller:
    """Who starts a session: an API key's holder (dispatcher/api/auth.py), or the dispatcher's own
    phone path. The owner key binds the session ids it makes to it."""

    id: str  # stable, not secret: scopes limits and logs
    owner_key: bytes = field(repr=False)  # secret to the key's holder
    internal: bool = False  # the dispatcher's own (the phone path's calls), not an API key's holder
    name: str | None = None  # a named key's name (DISPATCHER_API_KEYS `name:key`), not secret

    @classmethod
    def named(cls, name: str) -> Caller:
        """An internal caller, whose sessions no API key reads (`owner_key` derived from its name)."""
        return cls(name, hashlib.sha256(b"internal caller:" + name.encode()).digest(), internal=True)


def new_session_id(owner_key: bytes | str, idempotency_key: str | None, region: str = "") -> str:
    """`owner_key`: the caller's; a name (str) stands for an internal caller (`Caller.named`).
    `region`: the region that will hold the session ("" for a dispatcher that is one region)."""
    if isinstance(owner_key, str):
        owner_key = Caller.named(owner_key).owner_key
    if idempotency_key is None:
        stem = secrets.token_hex(8)
    else:
        stem = hmac.new(owner_key, b"idempotency\x00" + idempotency_key.encode(), hashlib.sha256).hexdigest()[:16]
    if region:
        stem = region_tag(region) + stem[TAG_CHARS:]
    return stem + _owner_tag(owner_key, stem)


def region_tag_of(session_id: str) -> str:
    """The tag of the region a session id names (meaningful with several regions only)."""
    return session_id[:TAG_CHARS]


def owned_by(session_id: str, owner_key: bytes) -> bool:
    """True when `session_id` was made for the caller holding `owner_key` (constant time)."""
    if not is_session_id(session_id):
        return False
    return hmac.compare_digest(session_id[16:], _owner_tag(owner_key, session_id[:16]))


def _owner_tag(owner_key: bytes, stem: str) -> str:
    return hmac.new(owner_key, b"owner\x00" + stem.encode(), hashlib.sha256).hexdigest()[:8]


@functools.lru_cache(maxsize=4096)  # one per caller, asked at every start: derived once
def digest_key(owner_key: bytes, deployment_secret: str | None) -> bytes:
    """The key of a caller's body fingerprints: its owner key and the deployment's secret (the bot
    channel's, which every replica holds), so a fingerprint kept where others read it (a Cloud
    Run execution's env, tags, labels) cannot be checked against guessed bodies (phone numbers)."""
    secret = (deployment_secret or "").encode()
    return hmac.new(owner_key, b"body digest\x00" + secret, hashlib.sha256).digest()


def body_digest(body: Mapping[str, Any], key: bytes) -> str:
    """A keyed fingerprint of the client's body (`digest_key`); equal JSON objects give equal digests.
    `surrogatepass`: a lone surrogate (JSON allows `"\\ud800"`) in any body that starts a session (an
    offer's requestData, a dial-in's From) gets a digest too, where it was a 500; others' are unchanged."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key, canonical.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]


def is_session_id(value: str) -> bool:
    return SESSION_ID.fullmatch(value) is not None
