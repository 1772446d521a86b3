"""One AWS JSON 1.1 API (ECS) over the dispatcher's aiohttp pool, signed with SigV4.

Instead of boto3 in a thread: botocore's own request building, signing and parsing were 55 % of
the dispatcher's samples under a burst and ~1.2 ms of CPU per call, plus a thread hop. The
protocol is small: `POST /` with `X-Amz-Target: <prefix>.<Operation>`, `Content-Type:
application/x-amz-json-1.1` and the parameters as JSON; the answer is JSON (timestamps are epoch
seconds). botocore keeps what it is good at, off the request path: the credential chain
(dispatcher/machines/ecs/credentials.py).

Errors are read as botocore reads them (`__type`, its part after `#`; the HTTP status when there
is none; `message` or `Message`) and sorted as the boto3 path sorted them: throttling codes
(and a bare 429) and server codes (and any 5xx) are `Transient`, for the caller's bounded
retries; no answer at all (refused, reset, timed out) is `Transient` too; any other error is an
`AwsError` for the caller to map (never retried: the same call would fail again).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from dispatcher.machines.ecs.credentials import AwsCredentials, KeySource, NoCredentials
from dispatcher.machines.ecs.sigv4 import SigV4Signer
from dispatcher.outbound.http_client import DEFAULT_CONNECTIONS, HttpClient, HttpError
from dispatcher.outbound.retry import Transient
from dispatcher.settings import SettingsError

CONTENT_TYPE = "application/x-amz-json-1.1"
THROTTLED = frozenset({"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded", "Throttling"})
SERVER = frozenset({"ServerException", "InternalFailure", "ServiceUnavailable"})
# AWS answers a denied call with HTTP 400 and one of these codes, not 401/403.
UNAUTHORIZED = frozenset({
    "AccessDeniedException", "AccessDenied", "UnrecognizedClientException", "InvalidSignatureException",
    "ExpiredTokenException",
    "IncompleteSignatureException", "MissingAuthenticationTokenException", "NoCredentials",
})  # fmt: skip


class AwsError(Exception):
    """The API answered and refused: `code` as botocore names it, `status` the HTTP status."""

    def __init__(self, operation: str, code: str, message: str, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.operation, self.code, self.message, self.status = operation, code, message, status
        self.body = body  # e.g. ConflictException's `resourceIds`

    @property
    def unauthorized(self) -> bool:
        return self.code in UNAUTHORIZED


def default_endpoint(service: str, region: str) -> str:
    """The regional endpoint botocore resolves for JSON services like ECS (China's partition
    has its own domain)."""
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{service}.{region}.{domain}"


def signing_host(endpoint: str) -> str:
    """The Host header as botocore signs it: lower case, without the scheme's default port."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise SettingsError(f"AWS endpoint {endpoint!r} must be http(s)://host[:port] with no path")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if parts.port is not None and parts.port != {"http": 80, "https": 443}[parts.scheme]:
        host = f"{host}:{parts.port}"
    return host


def error_code(body: Mapping[str, Any], status: int) -> str:
    code = str(body.get("__type") or status)
    return code.split(":", 1)[0].rsplit("#", 1)[-1]


class AwsJsonApi:
    """`await api.call("RunTask", {...})` → the answer's JSON object."""

    def __init__(
        self,
        *,
        service: str,
        target_prefix: str,
        region: str,
        endpoint: str | None,
        timeout: float,
        connect_timeout: float,
        credentials: KeySource | None = None,
        connections: int = DEFAULT_CONNECTIONS,
    ) -> None:
        self.endpoint = (endpoint or default_endpoint(service, region)).rstrip("/")
        self._host = signing_host(self.endpoint)
        self._target_prefix = target_prefix
        self._signer = SigV4Signer(service, region)
        self._credentials: KeySource = credentials or AwsCredentials()
        self._client = HttpClient(self.endpoint, timeout=timeout, connect_timeout=connect_timeout,
                                  connections=connections)

    async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """One attempt (the caller retries `Transient`). Raises `AwsError` for a refusal."""
        try:
            keys = await self._credentials.keys()
        except NoCredentials as exc:
            raise AwsError(operation, "NoCredentials", str(exc), 401, {}) from None
        body = json.dumps(params, separators=(",", ":")).encode()
        headers = {"content-type": CONTENT_TYPE, "x-amz-target": f"{self._target_prefix}.{operation}"}
        try:
            response = await self._client.request(
                "POST", "/", content=body, headers=self._signer.sign(self._host, headers, body, keys)
            )
        except HttpError as exc:  # connect/read timeouts, dropped connections
            raise Transient(f"{operation}: {exc}") from exc
        status = response.status_code
        try:
            answer = json.loads(response.content) if response.content.strip() else {}
        except ValueError:
            answer = None
        if status < 300:
            if not isinstance(answer, dict):  # a proxy's page, a cut-off body: try again
                raise Transient(f"{operation}: HTTP {status} with an answer that is not a JSON object")
            return answer
        body_of_error: Mapping[str, Any] = answer if isinstance(answer, dict) else {"message": response.text[:200]}
        code = error_code(body_of_error, status)
        if code in THROTTLED or status == 429:
            raise Transient(f"{operation}: {code}", status=429)
        if code in SERVER or status >= 500:
            raise Transient(f"{operation}: {code}", status=503)
        message = str(body_of_error.get("message", body_of_error.get("Message", "")))
        raise AwsError(operation, code, message, status, body_of_error)

    async def aclose(self) -> None:
        await self._client.aclose()
