"""Bearer-key authentication. Keys are held as SHA-256 digests and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac

from dispatcher.errors import ApiError
from dispatcher.settings import hash_api_key

LOCAL_CALLER = "local"  # the caller id when no keys are configured (loopback-only local mode)


class Authenticator:
    def __init__(self, key_hashes: frozenset[bytes]) -> None:
        self._key_hashes = tuple(key_hashes)

    @property
    def enabled(self) -> bool:
        return bool(self._key_hashes)

    def caller(self, authorization: str | None) -> str:
        """Return a stable, non-secret id of the caller, or raise 401.

        The id (a digest of the key's digest) scopes Idempotency-Keys per caller, so two clients
        using the same key string never share a session.
        """
        if not self.enabled:
            return LOCAL_CALLER
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("missing bearer token: send 'Authorization: Bearer <key>'")
        presented = hash_api_key(token.strip())
        matched = False
        for known in self._key_hashes:  # no early exit: time does not depend on which key matched
            matched |= hmac.compare_digest(presented, known)
        if not matched:
            raise _unauthorized("invalid API key")
        return hashlib.sha256(b"caller:" + presented).hexdigest()[:16]


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, extra={})
