"""The dispatcher's own Google credentials for its store: Application Default Credentials, a bearer
token for its calls and a signer for the URLs it hands out (dispatcher/artifacts/gcs_signing.py).

google-auth is synchronous: a token refresh runs in a thread. Signing is synchronous too (the store's
`part_url` is), locally with a key file's private key, or through IAM Credentials `signBlob`
(google-auth's `iam.Signer`, bounded by a 10 s timeout) for credentials without one.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from dispatcher.artifacts.store import STORE_ACCESS_DENIED, STORE_UNREACHABLE, StoreError

SCOPE = "https://www.googleapis.com/auth/cloud-platform"  # signBlob takes no narrower storage scope


class GcsCredentials:
    def __init__(self, where: str) -> None:
        self._where = where
        self._credentials: Any = None
        self._lock = threading.Lock()  # loading and refreshing happen in threads and in `part_url`
        self._iam_signer: Any = None

    def _load(self) -> Any:
        import google.auth
        import google.auth.exceptions

        with self._lock:
            try:
                if self._credentials is None:
                    self._credentials, _ = google.auth.default(scopes=[SCOPE])
                if not self._credentials.valid:
                    self._credentials.refresh(_request())
            except google.auth.exceptions.DefaultCredentialsError as exc:
                raise StoreError(f"{self._where}: the dispatcher has no Google credentials ({type(exc).__name__}): "
                                 "give it a service account, or set GOOGLE_APPLICATION_CREDENTIALS",
                                 STORE_ACCESS_DENIED) from None
            except google.auth.exceptions.TransportError as exc:
                raise StoreError(f"{self._where}: Google's sign-in did not answer ({type(exc).__name__}): the "
                                 "store is tried again later", STORE_UNREACHABLE) from None
            except google.auth.exceptions.GoogleAuthError as exc:
                raise StoreError(f"{self._where}: Google's sign-in failed ({type(exc).__name__}): check the "
                                 "dispatcher's service account", STORE_ACCESS_DENIED) from None
            return self._credentials

    async def token(self) -> str:
        return str((await asyncio.to_thread(self._load)).token)

    def email(self) -> str:
        credentials = self._load()
        email = getattr(credentials, "signer_email", None) or getattr(credentials, "service_account_email", None)
        if not email or email == "default":
            raise StoreError(f"{self._where}: the dispatcher's credentials name no service account to sign "
                             "URLs as: run it as a service account (a user's gcloud login cannot sign)",
                             STORE_ACCESS_DENIED)
        return str(email)

    def sign(self, payload: bytes) -> bytes:
        credentials = self._load()
        import google.auth.exceptions

        try:
            if hasattr(credentials, "sign_bytes"):  # a key file's (or an impersonated account's)
                return bytes(credentials.sign_bytes(payload))
            if self._iam_signer is None:
                from google.auth import iam

                self._iam_signer = iam.Signer(_request(), credentials, self.email())  # type: ignore[no-untyped-call]
            return bytes(self._iam_signer.sign(payload))
        except (google.auth.exceptions.GoogleAuthError, ValueError) as exc:
            raise StoreError(f"{self._where}: cannot sign a URL ({type(exc).__name__}: {str(exc)[:200]}): the "
                             "dispatcher's service account needs roles/iam.serviceAccountTokenCreator on itself "
                             "(iam.serviceAccounts.signBlob)", STORE_ACCESS_DENIED) from None


def _request() -> Any:
    # urllib3 is in the dispatcher's closure already (botocore); `requests` is not.
    import urllib3
    from google.auth.transport.urllib3 import Request

    return Request(urllib3.PoolManager(timeout=10.0, retries=urllib3.Retry(2, backoff_factor=0.2)))  # type: ignore[no-untyped-call]
