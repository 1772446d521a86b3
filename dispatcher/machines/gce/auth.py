"""Google API credentials for Compute Engine and Cloud Run: Application Default Credentials, or
none against a local fake.

A failed sign-in is the provider's error like any other call's: Google's token endpoint or the
metadata server out of reach, or answering 5xx (google-auth's `TransportError`, a retryable
`RefreshError`), is `<provider>_unavailable` with a retry hint; credentials Google refuses or
cannot find are `<provider>_unauthorized`, naming what to set. The error never carries the
answer's body (it may echo a key).
"""

from __future__ import annotations

import asyncio
from typing import Any

from dispatcher.machines.base import MachinesError

COMPUTE_SCOPE = "https://www.googleapis.com/auth/compute"
SIGN_IN_RETRY_AFTER = 5.0


class GceAuth:
    """Application Default Credentials (`google.auth.default`), refreshed in a thread because
    google-auth is synchronous; `anonymous` sends no credentials (a local fake)."""

    def __init__(self, *, anonymous: bool = False, scope: str = COMPUTE_SCOPE, provider: str = "gce") -> None:
        self._anonymous = anonymous
        self._scope = scope  # Cloud Run's Admin API takes cloud-platform only (dispatcher/machines/cloudrun)
        self._provider = provider
        self._credentials: Any = None
        self._lock = asyncio.Lock()

    async def headers(self) -> dict[str, str]:
        if self._anonymous:
            return {}
        import google.auth.exceptions

        async with self._lock:
            try:
                if self._credentials is None:
                    import google.auth

                    self._credentials, _ = await asyncio.to_thread(google.auth.default, scopes=[self._scope])
                if not self._credentials.valid:
                    await asyncio.to_thread(self._refresh)
            except google.auth.exceptions.DefaultCredentialsError as exc:
                raise MachinesError(f"{self._provider}_unauthorized", f"{self._provider}: no Google credentials "
                                    f"({type(exc).__name__}): give the dispatcher a service account, or set "
                                    "GOOGLE_APPLICATION_CREDENTIALS", nothing_sent=True) from None
            except google.auth.exceptions.GoogleAuthError as exc:
                raise self._sign_in_failed(exc) from None
        return {"Authorization": f"Bearer {self._credentials.token}"}

    def _sign_in_failed(self, exc: Exception) -> MachinesError:
        import google.auth.exceptions

        passing = isinstance(exc, google.auth.exceptions.TransportError) or getattr(exc, "retryable", False)
        if passing:
            return MachinesError(f"{self._provider}_unavailable", f"{self._provider}: Google's sign-in did not "
                                 f"answer ({type(exc).__name__})", retry_after=SIGN_IN_RETRY_AFTER,
                                 nothing_sent=True)
        return MachinesError(f"{self._provider}_unauthorized", f"{self._provider}: Google refused the dispatcher's "
                             f"credentials ({type(exc).__name__}): check its service account and its key",
                             nothing_sent=True)

    def _refresh(self) -> None:
        # urllib3 is in the dispatcher's closure already (botocore); `requests` is not.
        import urllib3
        from google.auth.transport.urllib3 import Request

        self._credentials.refresh(Request(urllib3.PoolManager(timeout=10.0)))  # type: ignore[no-untyped-call]
