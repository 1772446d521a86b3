"""AWS Signature Version 4 for the dispatcher's AWS calls: a POST to `/` with a JSON body.

https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv_create-signed-request.html.
Written here, not botocore's `SigV4Auth`, by measurement (`uv run --all-groups python -m
bench.sigv4`): botocore's builds an `AWSRequest`, re-parses the URL and re-derives the signing
key on every call; this signs only what the dispatcher sends (no query string, path `/`),
keeps the derived key per day, and costs a fraction of it. tests/dispatcher/machines/test_aws_signing.py
checks every signature against botocore's for the same clock, credentials and request.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import NamedTuple

ALGORITHM = "AWS4-HMAC-SHA256"


class AwsKeys(NamedTuple):
    """One set of credentials at one moment (botocore's `ReadOnlyCredentials` has this shape)."""

    access_key: str
    secret_key: str
    token: str | None


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


class SigV4Signer:
    """Signs requests to one service in one region; remembers the last derived signing key."""

    def __init__(self, service: str, region: str) -> None:
        self.service = service
        self.region = region
        self._key_for: tuple[str, str] = ("", "")  # (secret key, yyyymmdd) the cached key is for
        self._key = b""

    def _signing_key(self, secret: str, day: str) -> bytes:
        # The key depends on the secret and the day only: derived once a day (or per rotation),
        # not four HMACs per request.
        if self._key_for != (secret, day):
            key = _hmac(("AWS4" + secret).encode(), day)
            for part in (self.region, self.service, "aws4_request"):
                key = _hmac(key, part)
            self._key, self._key_for = key, (secret, day)
        return self._key

    def sign(
        self, host: str, headers: Mapping[str, str], body: bytes, keys: AwsKeys, *, now: float | None = None
    ) -> dict[str, str]:
        """The headers to send for `POST /` to `host` with `headers` (lower-case names, all of
        them signed) and `body`: `headers` plus host, x-amz-date, x-amz-security-token (when the
        credentials are temporary) and authorization."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
        day = stamp[:8]
        signed = {**headers, "host": host, "x-amz-date": stamp}
        if keys.token:
            signed["x-amz-security-token"] = keys.token
        names = sorted(signed)
        canonical_headers = "".join(f"{name}:{' '.join(signed[name].split())}\n" for name in names)
        signed_names = ";".join(names)
        canonical = f"POST\n/\n\n{canonical_headers}\n{signed_names}\n{hashlib.sha256(body).hexdigest()}"
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(keys.secret_key, day), to_sign.encode(), hashlib.sha256).hexdigest()
        signed["authorization"] = (
            f"{ALGORITHM} Credential={keys.access_key}/{scope}, SignedHeaders={signed_names}, Signature={signature}"
        )
        return signed
