"""azurite (Microsoft's Azure Storage emulator, from tests/azurite/package.json) as a separate process
on a free loopback port, in memory, strict (`--loose` off), over TLS with OAuth on (`--oauth basic`):
azurite gives user delegation keys only to a bearer token over HTTPS, as Azure does. Beside it, a
managed identity endpoint (Container Apps' protocol, `IDENTITY_ENDPOINT`/`IDENTITY_HEADER`, api-version
2019-08-01) that hands out tokens azurite accepts: it checks their audience, issuer and lifetime,
not their signature, so the tokens are unsigned JWTs of a made-up identity.

From azurite's own source and README (Azure/Azurite): Get User Delegation Key answers only a bearer
token (`ServiceHandler.getUserDelegationKey`; shared key and SAS callers are refused), OAuth needs
HTTPS ("OAuth Configuration"), and a user delegation SAS is checked by its HMAC with the key it
derives for that identity (`BlobSASAuthenticator`), so no account key is needed anywhere. It has no
immutability ("Blob Immutability Policy and Legal Hold" is among what it does not support;
`BlobHandler.setLegalHold` answers 501): tests/fakes/azure_legal_hold.py stands in for that part.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.fakes.arm_aci import self_signed
from tests.support.ports import free_port
from tests.support.processes import listens, terminate

ROOT = Path(__file__).resolve().parents[2]
AZURITE_BLOB = ROOT / "tests" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"  # azurite's one account
TENANT, OBJECT_ID = "72f988bf-0000-4000-8000-000000000001", "0b1f2c3d-0000-4000-8000-000000000002"
STORAGE_AUDIENCE = "https://storage.azure.com"


def missing() -> str | None:
    """Why azurite cannot start here (a test skips with it), or None."""
    if shutil.which("node") is None:
        return "no node on this machine (.ci/run installs it)"
    if not AZURITE_BLOB.exists():
        return "azurite is not installed: npm ci --prefix tests/azurite"
    return None


def jwt(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{part({'unsigned': True})}"


class _Identity(BaseHTTPRequestHandler):
    header = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        query = parse_qs(urlsplit(self.path).query)
        if self.headers.get("X-IDENTITY-HEADER") != self.header:
            return self._answer(401, {"error": "invalid_request", "error_description": "X-IDENTITY-HEADER"})
        if query.get("api-version") != ["2019-08-01"] or len(query.get("resource", [])) != 1:
            return self._answer(400, {"error": "invalid_request", "error_description": "api-version, resource"})
        now = int(time.time())
        resource = query["resource"][0]
        token = jwt({"aud": resource.rstrip("/"), "iss": f"https://sts.windows.net/{TENANT}/", "nbf": now - 60,
                     "iat": now - 60, "exp": now + 3600, "oid": OBJECT_ID, "tid": TENANT})
        return self._answer(200, {"access_token": token, "expires_on": str(now + 3600), "resource": resource,
                                  "token_type": "Bearer"})

    def _answer(self, status: int, body: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
        pass


@dataclass(frozen=True)
class Azurite:
    url: str  # https://127.0.0.1:<port>/devstoreaccount1
    cert_path: str
    key_path: str
    identity_env: dict[str, str]  # IDENTITY_ENDPOINT, IDENTITY_HEADER and RECORDING_CA_BUNDLE

    def destination(self, container: str, prefix: str) -> str:
        return f"{self.url}/{container}/{prefix}"

    def tls(self) -> ssl.SSLContext:
        """What a client trusts to reach it (the bot's own trust store, in the tests)."""
        return ssl.create_default_context(cafile=self.cert_path)

    def token(self) -> str:
        now = int(time.time())
        return jwt({"aud": STORAGE_AUDIENCE, "iss": f"https://sts.windows.net/{TENANT}/", "nbf": now - 60,
                    "iat": now - 60, "exp": now + 3600, "oid": OBJECT_ID, "tid": TENANT})

    def create_container(self, name: str) -> None:
        """The operator's part (the stacks make the container); with the test's own token."""
        answer = httpx.put(f"{self.url}/{name}", params={"restype": "container"}, verify=self.tls(),
                           headers={"Authorization": f"Bearer {self.token()}", "x-ms-version": "2023-11-03"})
        answer.raise_for_status()


@contextmanager
def azurite() -> Iterator[Azurite]:
    with tempfile.TemporaryDirectory(prefix="azurite-") as directory:
        cert, key = self_signed(Path(directory))
        port = free_port()
        process = subprocess.Popen(
            [str(AZURITE_BLOB), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
             "--oauth", "basic", "--cert", cert, "--key", key, "--disableTelemetry",
             "--silent"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=directory)
        _Identity.header = secrets.token_hex(8)
        identity = ThreadingHTTPServer(("127.0.0.1", 0), _Identity)
        serving = threading.Thread(target=identity.serve_forever, daemon=True)
        serving.start()
        try:
            _wait_listening(port, process)
            yield Azurite(f"https://127.0.0.1:{port}/{ACCOUNT}", cert, key, {
                "IDENTITY_ENDPOINT": f"http://127.0.0.1:{identity.server_address[1]}/msi/token",
                "IDENTITY_HEADER": _Identity.header, "RECORDING_CA_BUNDLE": cert})
        finally:
            identity.shutdown()
            identity.server_close()
            terminate(process)


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    """Until azurite itself listens on `port` (another test's server may have taken a port chosen free)."""
    deadline = time.monotonic() + 60  # node starts azurite in about a second; much more on a busy machine
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"azurite exited: {process.stderr.read().decode() if process.stderr else ''}")
        if listens(process, port):
            return
        time.sleep(0.1)
    raise RuntimeError("azurite did not listen within 60 s")
