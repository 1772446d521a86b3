"""Reading the Cloud Run Admin API's refusals: AIP-193 errors (`{"error": {code, message, status, details}}`).

A 429 `RESOURCE_EXHAUSTED` means one of two things. A request-rate limit (an `ErrorInfo` whose
reason is `RATE_LIMIT_EXCEEDED`, or no detail at all) passes in seconds and is retried. A quota
(a `QuotaFailure` detail, e.g. the 1000 running executions per project and region) holds until
executions end: retrying at once only spends the rate limit, so it is answered at capacity, with
a `Retry-After` of its own, and not retried.
"""

from __future__ import annotations

from typing import Any

from dispatcher.machines.base import MachinesError
from dispatcher.outbound.http_client import HttpResponse
from dispatcher.outbound.provider_errors import refusal

QUOTA_RETRY_AFTER = 30.0  # a running execution ends with its session: minutes, but some end every few seconds
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def error_of(response: HttpResponse) -> dict[str, Any]:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def status_of(response: HttpResponse) -> str:
    return str(error_of(response).get("status", ""))


def is_quota(response: HttpResponse) -> bool:
    """A 429 for a quota that holds (not a request rate): see the module's docstring."""
    if response.status_code != 429:
        return False
    details = [d for d in error_of(response).get("details") or [] if isinstance(d, dict)]
    rate = any(d.get("@type") == ERROR_INFO and d.get("reason") == "RATE_LIMIT_EXCEEDED" for d in details)
    return not rate and any(d.get("@type") == QUOTA_FAILURE for d in details)


def failed(response: HttpResponse, what: str) -> MachinesError:
    message = str(error_of(response).get("message") or f"HTTP {response.status_code}")
    capacity = is_quota(response)
    return refusal(MachinesError, "cloudrun", response.status_code, f"Cloud Run refused to {what}: {message}",
                   capacity_retry_after=QUOTA_RETRY_AFTER if capacity else None)
