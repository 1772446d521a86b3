"""This machine's identity token, fetched fresh for each hello (botchannel/contract.py, `identity`).

The dispatcher admits a cloud bot's hello only with a token its provider signed for this very
machine (docs/security.md, "A bot's hello names its machine", says what each provider's proof is
and how the dispatcher checks it). `BOT_IDENTITY` picks the source: `gce` (the metadata server's
identity token), `cloudrun` (a Cloud Run task's metadata server: the same path, a standard token,
which names the service account only), `fly` (the Machine API socket's OIDC token), `ecs` (a presigned
`sts:GetCallerIdentity` bound to the channel URL by a signed header), `local` (a nonce through the
socket pair the local dispatcher handed over), `modal` (the Sandbox's own OIDC token, which Modal
puts in its environment: no audience of ours, the same token for every dial), unset (none). Each
dial needs a proof of its own elsewhere: a JWT's audience carries a fresh `#fragment` (a Cloud Run
bot's begins with its execution's nonce).

Standard library only, in a thread (no HTTP client import at start-up); every call has a timeout
and a few tries with backoff, then `IdentityUnavailable` names the server that did not answer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import secrets
import socket
import time
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from botchannel.contract import EXECUTION_NONCE_VARIABLE, IDENTITY_FD_VARIABLE, IDENTITY_SOURCES, IDENTITY_VARIABLE
from voicefleet_settings.read import setting_text

GCE_METADATA_HOST = "metadata.google.internal"
GCE_IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
FLY_SOCKET_VARIABLE = "BOT_FLY_API_SOCKET"  # tests point it at a fake's socket
ECS_CREDENTIALS_HOST = "169.254.170.2"  # the ECS agent's task credentials endpoint
STS_VERSION = "2011-06-15"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
PRESIGN_SECONDS = 60  # the dispatcher forwards it within the hello's handling: a minute is plenty
AUDIENCE_HEADER = "x-voicefleet-channel"  # the signed header naming the channel the presign is for
MODAL_TOKEN_VARIABLE = "MODAL_IDENTITY_TOKEN"  # noqa: S105 - a variable name (modal.com/docs/guide/oidc-integration)
MODAL_TOKEN_FILE_VARIABLE = "MODAL_IDENTITY_TOKEN_FILE"  # noqa: S105 - read first by the modal client
# A Kubernetes pod's projected ServiceAccount token of voicefleet's audience (dispatcher/machines/k8s/pods.py).
K8S_TOKEN_FILE_VARIABLE = "BOT_K8S_TOKEN_FILE"  # noqa: S105 - a variable name; tests point it at a fake's file
TIMEOUT_SECONDS = 5.0
BACKOFF_SECONDS = (0.5, 1.0, 2.0)  # four tries in ~3.5 s (plus their timeouts), then the dial fails


class IdentityUnavailable(Exception):
    """The provider's identity source did not give this machine a token."""


def identity_source(env: Mapping[str, str]) -> str | None:
    """`BOT_IDENTITY` checked: one of IDENTITY_SOURCES, or None when unset."""
    source = setting_text(env, IDENTITY_VARIABLE) or None
    if source is not None and source not in IDENTITY_SOURCES:
        raise ValueError(f"{IDENTITY_VARIABLE} must be one of {', '.join(IDENTITY_SOURCES)}, got {source!r}")
    return source


class MachineIdentity:
    def __init__(self, source: str | None, audience: str, env: Mapping[str, str]) -> None:
        self.source, self.audience = source, audience
        self._env = env
        self._metadata_host = env.get("GCE_METADATA_HOST", "").strip() or GCE_METADATA_HOST
        self._fly_socket = setting_text(env, FLY_SOCKET_VARIABLE)
        self._ecs = _EcsTaskRole(env, audience)
        self._launch = LaunchSocket(env) if source == "local" else None
        # A Cloud Run execution's nonce: its tokens carry it, so they name the execution too.
        self._nonce = setting_text(env, EXECUTION_NONCE_VARIABLE) if source == "cloudrun" else ""

    async def token(self) -> str | None:
        """A fresh token for the channel's URL, or None where the provider issues none."""
        if self.source is None:
            return None
        if self._launch is not None:
            return self._launch.proof()  # a local write: nothing to wait for, nothing to retry
        if self.source == "modal":
            return modal_identity_token(self._env)  # a file or the environment: nothing to retry
        if self.source == "k8s":
            return k8s_identity_token(self._env)  # a file the kubelet keeps fresh: nothing to retry
        fetch = {"gce": self._gce, "cloudrun": self._cloud_run, "fly": self._fly,
                 "ecs": self._ecs.presigned_identity}[self.source]
        failure = ""
        for delay in (*BACKOFF_SECONDS, None):
            try:
                return await asyncio.to_thread(fetch)
            except (OSError, http.client.HTTPException, IdentityUnavailable) as exc:
                failure = str(exc) or type(exc).__name__
            if delay is not None:
                await asyncio.sleep(delay)
        where = {"gce": f"the metadata server ({self._metadata_host})",
                 "cloudrun": f"the metadata server ({self._metadata_host})",
                 "fly": f"the Machines API socket ({self._fly_socket})",
                 "ecs": f"the task credentials endpoint ({self._ecs.credentials_url})"}[self.source]
        raise IdentityUnavailable(f"no identity token from {where}: {failure}")

    def _dial_audience(self) -> str:
        """The channel URL with a fragment of this dial's own: the token is new, never a cached one."""
        fresh = secrets.token_urlsafe(12)
        return f"{self.audience}#{self._nonce}.{fresh}" if self._nonce else f"{self.audience}#{fresh}"

    def _gce(self) -> str:
        return self._metadata_identity(full=True)

    def _cloud_run(self) -> str:
        # Cloud Run's metadata server documents no `format=full`: its tokens name no instance.
        return self._metadata_identity(full=False)

    def _metadata_identity(self, *, full: bool) -> str:
        host, _, prefix = self._metadata_host.partition("/")
        path = f"/{prefix}" if prefix else ""
        query = f"?audience={quote(self._dial_audience(), safe='')}" + ("&format=full" if full else "")
        connection = http.client.HTTPConnection(host, timeout=TIMEOUT_SECONDS)
        try:
            connection.request("GET", path + GCE_IDENTITY_PATH + query, headers={"Metadata-Flavor": "Google"})
            return _token(connection.getresponse())
        finally:
            connection.close()

    def _fly(self) -> str:
        connection = _UnixConnection(self._fly_socket)
        try:
            body = json.dumps({"aud": self._dial_audience()})
            connection.request("POST", "/v1/tokens/oidc", body=body, headers={"Content-Type": "application/json"})
            return _token(connection.getresponse())
        finally:
            connection.close()


def modal_identity_token(env: Mapping[str, str]) -> str:
    """A Modal Sandbox's identity token: `MODAL_IDENTITY_TOKEN_FILE`'s content, reread (Modal rewrites
    it as the token renews), else `MODAL_IDENTITY_TOKEN` (the `modal` client's own order)."""
    if path := setting_text(env, MODAL_TOKEN_FILE_VARIABLE):
        with contextlib.suppress(OSError), open(path) as file:
            if token := file.read(16 * 1024).strip():
                return token
    token = setting_text(env, MODAL_TOKEN_VARIABLE)
    if token.count(".") != 2:
        raise IdentityUnavailable(f"no {MODAL_TOKEN_VARIABLE} in the Sandbox (created without "
                                  "include_oidc_identity_token?)")
    return token


def k8s_identity_token(env: Mapping[str, str]) -> str:
    """A pod's projected ServiceAccount token, read again at each dial (the kubelet rewrites it)."""
    path = setting_text(env, K8S_TOKEN_FILE_VARIABLE)
    try:
        with open(path) as file:
            token = file.read(16 * 1024).strip()
    except OSError as exc:
        raise IdentityUnavailable(f"no identity token at {path} ({type(exc).__name__}): the pod's projected "
                                  "ServiceAccount token is not mounted") from None
    if not token:
        raise IdentityUnavailable(f"the identity token at {path} is empty")
    return token


class LaunchSocket:
    """A local bot's end of the socket pair it was launched with (`BOT_IDENTITY_FD`)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        raw = setting_text(env, IDENTITY_FD_VARIABLE)
        self.fd = int(raw) if raw.isdigit() else None
        if self.fd is not None:  # not for the user's subprocesses (pass_fds made it inheritable)
            with contextlib.suppress(OSError):
                os.set_inheritable(self.fd, False)

    def proof(self) -> str:
        """A fresh nonce, written through the launch socket: the dispatcher admits it once."""
        if self.fd is None:
            raise IdentityUnavailable(f"{IDENTITY_VARIABLE}=local needs {IDENTITY_FD_VARIABLE}, "
                                      "the launch socket's descriptor")
        nonce = secrets.token_urlsafe(32)
        try:
            os.write(self.fd, nonce.encode() + b"\n")  # 44 bytes: far below any socket buffer, never partial
        except OSError as exc:
            raise IdentityUnavailable(f"cannot write to the launch socket ({IDENTITY_FD_VARIABLE}={self.fd}): "
                                      f"{exc.strerror or exc}") from None
        return nonce


def _token(response: http.client.HTTPResponse) -> str:
    text = response.read(16 * 1024).decode("ascii", errors="replace").strip()
    if response.status != 200:
        raise IdentityUnavailable(f"HTTP {response.status}")
    if text.count(".") != 2:
        raise IdentityUnavailable("the answer is not a JWT")
    return text


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (Fly's `/.fly/api`; the host name is only the request's Host)."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT_SECONDS)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class _EcsTaskRole:
    """The task role's presigned `sts:GetCallerIdentity`, from the ECS agent's credentials endpoint."""

    def __init__(self, env: Mapping[str, str], audience: str) -> None:
        self.audience = audience.strip()
        relative = env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "").strip()
        full = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", "").strip()
        self.credentials_url = f"http://{ECS_CREDENTIALS_HOST}{relative}" if relative else full
        self._authorization = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN", "").strip()
        self.region = env.get("AWS_REGION", "").strip() or env.get("AWS_DEFAULT_REGION", "").strip()
        self.sts_url = (env.get("AWS_ENDPOINT_URL_STS", "").strip().rstrip("/")
                        or (f"https://sts.{self.region}.{_aws_domain(self.region)}" if self.region else ""))

    def presigned_identity(self) -> str:
        """The presigned URL, base64url without padding (the hello's `identity` alphabet)."""
        if not self.credentials_url:
            raise IdentityUnavailable("no AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: the task has no task role")
        if not self.sts_url:
            raise IdentityUnavailable("no AWS_REGION to name the STS endpoint by")
        if not self.audience:
            raise IdentityUnavailable("no channel URL to bind the presigned request to")
        access_key, secret_key, session_token = self._credentials()
        url = presign_get_caller_identity(self.sts_url, self.region, access_key, secret_key, session_token,
                                          audience=self.audience)
        return base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")

    def _credentials(self) -> tuple[str, str, str]:
        parts = urlsplit(self.credentials_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise IdentityUnavailable(f"the credentials endpoint {self.credentials_url!r} is not an http(s) URL")
        connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = connection_type(parts.netloc, timeout=TIMEOUT_SECONDS)
        headers = {"Authorization": self._authorization} if self._authorization else {}
        try:
            connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers)
            response = connection.getresponse()
            body = response.read(64 * 1024)
        finally:
            connection.close()
        if response.status != 200:
            raise IdentityUnavailable(f"HTTP {response.status}")
        try:
            answer = json.loads(body)
            return str(answer["AccessKeyId"]), str(answer["SecretAccessKey"]), str(answer["Token"])
        except (ValueError, KeyError, TypeError):
            raise IdentityUnavailable("the answer holds no AccessKeyId, SecretAccessKey and Token") from None


def _aws_domain(region: str) -> str:
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


def presign_get_caller_identity(sts_url: str, region: str, access_key: str, secret_key: str, session_token: str,
                                *, audience: str, now: float | None = None) -> str:
    """`GET <sts_url>/?Action=GetCallerIdentity…` signed with SigV4 in its query string
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-query-string-auth.html):
    `host` and `x-voicefleet-channel: <audience>` are the signed headers (the request is valid only
    when sent with that header), the payload the empty body's hash (as botocore presigns STS)."""
    host = urlsplit(sts_url).netloc
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    scope = f"{stamp[:8]}/{region}/sts/aws4_request"
    params = {
        "Action": "GetCallerIdentity", "Version": STS_VERSION, "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{access_key}/{scope}", "X-Amz-Date": stamp, "X-Amz-Expires": str(PRESIGN_SECONDS),
        "X-Amz-SignedHeaders": f"host;{AUDIENCE_HEADER}", "X-Amz-Security-Token": session_token,
    }
    query = "&".join(f"{_uri(k)}={_uri(v)}" for k, v in sorted(params.items()))
    headers = f"host:{host}\n{AUDIENCE_HEADER}:{' '.join(audience.split())}\n"  # SigV4's trimmed value
    canonical = f"GET\n/\n{query}\n{headers}\nhost;{AUDIENCE_HEADER}\n{EMPTY_SHA256}"
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = ("AWS4" + secret_key).encode()
    for part in (stamp[:8], region, "sts", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{sts_url}/?{query}&X-Amz-Signature={signature}"


def _uri(value: str) -> str:
    return quote(value, safe="-_.~")
