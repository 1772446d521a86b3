"""Google Cloud Storage V4 signed URLs (GOOG4-RSA-SHA256) with the dispatcher's own credentials.

The process is GCS's "V4 signing process" (https://cloud.google.com/storage/docs/authentication/signatures,
https://cloud.google.com/storage/docs/access-control/signing-urls-manually): a canonical request
(method, the percent-encoded path, the sorted query, `host` as the one signed header and
`UNSIGNED-PAYLOAD`), hashed into a string to sign under the scope `<date>/auto/storage/goog4_request`,
signed RSA-SHA256 by the service account. A key file's credentials sign locally; credentials with no
private key (a VM's, Cloud Run's: the metadata server) sign through the IAM Credentials `signBlob`
API as the same service account (google-auth's `iam.Signer`), which needs
`iam.serviceAccounts.signBlob` on itself (roles/iam.serviceAccountTokenCreator).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from urllib.parse import quote, urlsplit

ALGORITHM = "GOOG4-RSA-SHA256"
MAX_SECONDS = 7 * 24 * 3600  # GCS refuses a V4 signature meant to live longer


def _encoded(value: str, safe: str = "") -> str:
    return quote(value, safe="-_.~" + safe)


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{_encoded(k)}={_encoded(v)}" for k, v in sorted(params.items()))


def canonical_request(method: str, path: str, params: Mapping[str, str], host: str) -> str:
    return "\n".join([method, path, canonical_query(params), f"host:{host}", "", "host", "UNSIGNED-PAYLOAD"])


def string_to_sign(stamp: str, scope: str, request: str) -> str:
    return "\n".join([ALGORITHM, stamp, scope, hashlib.sha256(request.encode()).hexdigest()])


def signed_url(base: str, bucket: str, key: str, method: str, seconds: float, query: Mapping[str, str],
               email: str, sign: Callable[[bytes], bytes], now: dt.datetime | None = None) -> str:
    """A path-style URL (`<base>/<bucket>/<key>`) that takes one `method` with exactly `query` until it expires."""
    now = now or dt.datetime.now(dt.UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = f"{day}/auto/storage/goog4_request"
    host = urlsplit(base).netloc
    path = f"/{bucket}/{_encoded(key, '/')}"
    params = {**query, "X-Goog-Algorithm": ALGORITHM, "X-Goog-Credential": f"{email}/{scope}",
              "X-Goog-Date": stamp, "X-Goog-Expires": str(int(seconds)), "X-Goog-SignedHeaders": "host"}
    signature = sign(string_to_sign(stamp, scope, canonical_request(method, path, params, host)).encode())
    return f"{base}{path}?{canonical_query(params)}&X-Goog-Signature={signature.hex()}"
