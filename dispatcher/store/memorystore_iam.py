"""Signing in to Memorystore for Valkey with IAM (`REDIS_AUTH=gcp-iam`).

Memorystore's IAM authentication takes the caller's OAuth access token as its password. The token
comes from Application Default Credentials (on Cloud Run: the service's own account, which holds
`roles/memorystore.dbConnectionUser`), is refreshed before it expires, and is asked for only when
a new connection signs in: an open connection stays signed in.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from redis.credentials import CredentialProvider

SCOPE = "https://www.googleapis.com/auth/cloud-platform"


class GcpIamCredentials(CredentialProvider):
    def __init__(self, credentials: Any | None = None) -> None:
        if credentials is None:
            import google.auth

            credentials, _ = google.auth.default(scopes=[SCOPE])
        self._credentials = credentials
        self._lock = threading.Lock()

    def get_credentials(self) -> tuple[str]:
        with self._lock:
            if not self._credentials.valid:
                from google.auth.transport.requests import Request

                self._credentials.refresh(Request())
            return (str(self._credentials.token),)

    async def get_credentials_async(self) -> tuple[str]:
        # A refresh is an HTTPS call to the metadata server: off the event loop.
        return await asyncio.to_thread(self.get_credentials)
