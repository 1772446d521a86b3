"""Short-lived URLs on the dispatcher's own address for the local folder store, signed like
pre-signed S3 URLs: what they open (one part of one upload, or one object to read) and until when
are in the path, with an HMAC of both under a key the bot never sees. One URL opens nothing else."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

PART_PATH = "/bots/recordings/parts/"  # a bot's route: on BOT_CHANNEL_PORT when there is one
FILE_PATH = "/recordings/files/"


class SignedPaths:
    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._clock = clock

    def sign(self, base: str, claims: dict[str, Any], seconds: float) -> str:
        payload = dict(claims, exp=int(self._clock() + seconds))
        body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{base}{body}.{self._mac(body)}"

    def verify(self, token: str, **expected: Any) -> dict[str, Any] | None:
        """The token's claims if it is this dispatcher's, unexpired, and says `expected`; else None."""
        body, _, mac = token.partition(".")
        # As bytes: a path may decode to any text, and compare_digest refuses non-ASCII strings.
        if not body or not hmac.compare_digest(mac.encode(), self._mac(body).encode()):
            return None
        try:
            claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int) or claims["exp"] < self._clock():
            return None
        if any(claims.get(name) != value for name, value in expected.items()):
            return None
        return claims

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
