"""Check a request's SigV4 signature as AWS does, for the fakes of AWS APIs (ECS's proxy, the
bench's fast fake).

The signature is recomputed with botocore's own `SigV4Auth` (not the dispatcher's signer, so a
mistake in that cannot verify itself) over the headers the request says it signed, and the
request is refused with the error AWS answers: no `Authorization` → MissingAuthenticationToken;
malformed, or `host`/`x-amz-date` not signed → IncompleteSignature; an unknown access key or
session token → UnrecognizedClient; a scope of another day, region or service, a clock more
than 5 minutes off, or a signature that differs → InvalidSignature. All with HTTP 400, as
JSON APIs like ECS answer them (the code, not the status, says what failed).
"""

from __future__ import annotations

import calendar
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})"
)
MAX_SKEW_SECONDS = 300


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str


@dataclass(frozen=True)
class KnownKey:
    secret: str
    token: str | None = None


def check(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    keys: Mapping[str, KnownKey],
    region: str,
    service: str,
    now: float | None = None,
) -> Refusal | None:
    """None if AWS would accept the signature; else what it answers. `headers` with lower-case names."""
    authorization = headers.get("authorization")
    if not authorization:
        return Refusal(400, "MissingAuthenticationTokenException", "Missing Authentication Token")
    parsed = _AUTHORIZATION.fullmatch(authorization)
    signed = parsed["signed"].split(";") if parsed else []
    if parsed is None or "host" not in signed or "x-amz-date" not in signed or any(n not in headers for n in signed):
        return Refusal(400, "IncompleteSignatureException", "Authorization header is malformed or signs too little")
    known = keys.get(parsed["key"])
    if known is None or headers.get("x-amz-security-token") != known.token:
        return Refusal(400, "UnrecognizedClientException", "The security token included in the request is invalid.")
    stamp = headers["x-amz-date"]
    try:
        when = calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return Refusal(400, "IncompleteSignatureException", f"x-amz-date {stamp!r} is not yyyymmddThhmmssZ")
    if abs(when - (time.time() if now is None else now)) > MAX_SKEW_SECONDS:
        return Refusal(400, "InvalidSignatureException", "Signature expired: the request time is too far off")
    if (parsed["day"], parsed["region"], parsed["service"]) != (stamp[:8], region, service):
        return Refusal(400, "InvalidSignatureException", "Credential should be scoped to a valid date/region/service")
    request = AWSRequest(method=method, url=f"http://{headers['host']}{path}", data=body,
                         headers={name: headers[name] for name in signed})
    request.context["timestamp"] = stamp
    auth = SigV4Auth(Credentials(parsed["key"], known.secret, known.token), service, region)
    string_to_sign = auth.string_to_sign(request, auth.canonical_request(request))
    if not hmac.compare_digest(auth.signature(string_to_sign, request), parsed["signature"]):
        message = "The request signature we calculated does not match the signature you provided."
        return Refusal(400, "InvalidSignatureException", message)
    return None


def check_presigned(
    method: str,
    path: str,
    raw_query: str,
    headers: Mapping[str, str],
    *,
    keys: Mapping[str, KnownKey],
    region: str,
    service: str,
    now: float | None = None,
    s3: bool = False,
) -> Refusal | None:
    """The same for a request presigned in its query string (SigV4 query authentication, as STS
    answers it: HTTP 403 and its own codes). The signature is recomputed by botocore's
    `SigV4QueryAuth` over every query parameter but the signature itself, with the payload hash
    it presigns with (`s3`: S3's own signer, whose payload is unsigned and whose path is taken as
    it is); `headers` with lower-case names."""
    from urllib.parse import parse_qsl, urlencode

    from botocore.auth import S3SigV4QueryAuth, SigV4QueryAuth

    pairs = parse_qsl(raw_query, keep_blank_values=True)
    params = dict(pairs)
    needed = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
              "X-Amz-Signature")
    if not any(name in params for name in needed):
        return Refusal(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
    if len(params) != len(pairs) or not all(name in params for name in needed):
        return Refusal(400, "IncompleteSignature", "The request signature does not conform to AWS standards")
    scope = params["X-Amz-Credential"].split("/")
    signed = params["X-Amz-SignedHeaders"].split(";")
    if params["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256" or len(scope) != 5 or "host" not in signed or any(
            name not in headers for name in signed):
        return Refusal(400, "IncompleteSignature", "The request signature does not conform to AWS standards")
    known = keys.get(scope[0])
    if known is None or params.get("X-Amz-Security-Token") != known.token:
        return Refusal(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
    stamp = params["X-Amz-Date"]
    try:
        when = calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
        expires = int(params["X-Amz-Expires"])
    except ValueError:
        return Refusal(400, "IncompleteSignature", "X-Amz-Date or X-Amz-Expires is malformed")
    clock = time.time() if now is None else now
    if when - clock > MAX_SKEW_SECONDS or clock > when + expires:
        return Refusal(403, "SignatureDoesNotMatch", "Signature expired or not yet current")
    if (scope[1], scope[2], scope[3]) != (stamp[:8], region, service):
        return Refusal(403, "SignatureDoesNotMatch", "Credential should be scoped to a valid date/region/service")
    unsigned = urlencode([(k, v) for k, v in pairs if k != "X-Amz-Signature"])
    request = AWSRequest(method=method, url=f"http://{headers['host']}{path}?{unsigned}",
                         headers={name: headers[name] for name in signed})
    request.context["timestamp"] = stamp
    signer = S3SigV4QueryAuth if s3 else SigV4QueryAuth
    auth = signer(Credentials(scope[0], known.secret, known.token), service, region, expires=expires)
    string_to_sign = auth.string_to_sign(request, auth.canonical_request(request))
    if not hmac.compare_digest(auth.signature(string_to_sign, request), params["X-Amz-Signature"]):
        message = "The request signature we calculated does not match the signature you provided."
        return Refusal(403, "SignatureDoesNotMatch", message)
    return None
