"""Compute Engine API credentials: Application Default Credentials, or none against a local fake."""

from __future__ import annotations

import asyncio
from typing import Any

COMPUTE_SCOPE = "https://www.googleapis.com/auth/compute"


class GceAuth:
    """Application Default Credentials (`google.auth.default`), refreshed in a thread because
    google-auth is synchronous; `anonymous` sends no credentials (a local fake)."""

    def __init__(self, *, anonymous: bool = False, scope: str = COMPUTE_SCOPE) -> None:
        self._anonymous = anonymous
        self._scope = scope  # Cloud Run's Admin API takes cloud-platform only (dispatcher/machines/cloudrun)
        self._credentials: Any = None
        self._lock = asyncio.Lock()

    async def headers(self) -> dict[str, str]:
        if self._anonymous:
            return {}
        async with self._lock:
            if self._credentials is None:
                import google.auth

                self._credentials, _ = await asyncio.to_thread(google.auth.default, scopes=[self._scope])
            if not self._credentials.valid:
                await asyncio.to_thread(self._refresh)
        return {"Authorization": f"Bearer {self._credentials.token}"}

    def _refresh(self) -> None:
        # urllib3 is in the dispatcher's closure already (botocore); `requests` is not.
        import urllib3
        from google.auth.transport.urllib3 import Request

        self._credentials.refresh(Request(urllib3.PoolManager(timeout=10.0)))  # type: ignore[no-untyped-call]
