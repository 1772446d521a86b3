"""A client of the Kubernetes API server's REST API for one namespace's pods, over aiohttp.

Signed in with a bearer token read from a file (the Pod's own ServiceAccount token, which the
kubelet rotates: read again when the file changes), trusting the cluster's CA. Every call has a
timeout, and its connection CONNECT_SECONDS of it (a connection never made sent nothing: over
K8S_CELLS the launch goes on to another cluster at once, k8s/cells.py); 429 (the API server's
priority and fairness, with Retry-After) and 5xx are retried with backoff within the retry deadline.
The API server's refusals are its `Status` object (`reason`, `message`, `code`), mapped here once: a
ResourceQuota's 403 `exceeded quota` is a cluster at capacity (retry later, or raise the quota); a
403 an admission check gave (a ValidatingAdmissionPolicy, a webhook, Pod Security) is the object
refused, named so; any other 401 or 403 is the dispatcher's credential or RBAC, a configuration
error; a token file the dispatcher cannot open for want of descriptors is its own limit
(`dispatcher_exhausted`, as a connection it cannot open: outbound/retry.py). Log lines and errors name
the method and path only.

A bot's TokenReview is the exception: asked once (never retried, whatever the answer: a hello is one
review), through a client of its own with REVIEW_CONNECTIONS connections, so hellos, however many,
never hold a connection the provider's calls and watches need.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from dispatcher.machines.base import MachinesError
from dispatcher.machines.k8s.settings import K8sSettings
from dispatcher.outbound.http_client import HttpClient, HttpResponse, StreamedAnswer
from dispatcher.outbound.http_failure import exhausted
from dispatcher.outbound.provider_errors import refusal
from dispatcher.outbound.retry import Backoff, exhausted_error, provider_request

PROVIDER = "k8s"
CAPACITY_RETRY_AFTER = 30.0
JSON_PATCH = "application/json-patch+json"
POD_VERBS = "create, get, list, watch, patch and delete pods"
# An API server answers a TCP connection within a round trip, a cell's in another region too: a silent one
# is told from a slow answer well before the call's own timeout.
CONNECT_SECONDS = 3.0
REVIEW_CONNECTIONS = 8  # TokenReviews in flight at once; more hellos wait for one (each within the timeout)
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"  # noqa: S105 - a path


def status_of(response: HttpResponse) -> tuple[str, str]:
    """The API server's `Status` (reason, message), or the HTTP status when the answer is not one."""
    try:
        body = response.json()
        return str(body.get("reason", "")), str(body.get("message", ""))
    except (ValueError, AttributeError):
        return "", f"HTTP {response.status_code}"


def quota_resources(message: str) -> list[str]:
    """The resources a quota refusal names as requested past it (the quota admission plugin's
    `exceeded quota: <name>, requested: pods=1,requests.cpu=1, used: …`), object counts by their plural:
    `count/sandboxclaims.extensions.agents.x-k8s.io` is `sandboxclaims`. [] when the message says none."""
    requested = message.partition("requested: ")[2].partition(", used:")[0]
    names = [item.partition("=")[0].strip() for item in requested.split(",") if "=" in item]
    return [n.removeprefix("count/").split(".")[0] if n.startswith("count/") else n for n in names]


# How the API server words an admission check's 403 (each its own plugin's): a ValidatingAdmissionPolicy's
# `… is forbidden: ValidatingAdmissionPolicy '<name>' with binding '<name>' denied request: …`, a webhook's
# `admission webhook "<name>" denied the request: …`, Pod Security's `… violates PodSecurity "<level>" …`.
ADMISSION_WORDS = ("ValidatingAdmissionPolicy '", 'admission webhook "', "violates PodSecurity")
BOT_POLICY = "docs/kubernetes.md, \"What the dispatcher's pods may be\""


def admission_refused(message: str) -> bool:
    """An admission check refused the object itself: no credential or RBAC the operator could fix."""
    return any(words in message for words in ADMISSION_WORDS)


def quota_exceeded(response: HttpResponse) -> bool:
    """A ResourceQuota's refusal: 403 Forbidden whose message says `exceeded quota` (the quota
    admission plugin's words, kubernetes.io "Resource Quotas")."""
    return response.status_code == 403 and "exceeded quota" in status_of(response)[1]


class KubeApi:
    """The namespace's pods: `/api/v1/namespaces/<ns>/pods[/<name>]`."""

    def __init__(self, settings: K8sSettings) -> None:
        self.settings = settings
        connect = min(CONNECT_SECONDS, settings.timeout)
        self._client = HttpClient(settings.api_url, timeout=settings.timeout, connect_timeout=connect,
                                  ca_file=settings.ca_file)
        self._backoff = Backoff(attempts=5, base=0.3, cap=4.0, deadline=settings.retry_deadline)
        self._reviews = HttpClient(settings.api_url, timeout=settings.timeout, connect_timeout=connect,
                                   ca_file=settings.ca_file, connections=REVIEW_CONNECTIONS)
        self.once = Backoff(attempts=1, deadline=settings.timeout)  # a call sent once, never retried
        self._token: tuple[float, str] | None = None  # (the file's mtime, its token)
        self.pods_path = f"/api/v1/namespaces/{settings.namespace}/pods"

    def _bearer(self) -> str:
        path = self.settings.token_file
        try:
            mtime = os.stat(path).st_mtime
            if self._token is None or self._token[0] != mtime:
                with open(path, encoding="utf-8") as file:
                    self._token = (mtime, file.read().strip())
        except OSError as exc:
            if (why := exhausted(exc)) is not None:  # the file is fine: the dispatcher could not open it
                raise exhausted_error(MachinesError, PROVIDER, why, f"{PROVIDER}: K8S_TOKEN_FILE {path} cannot be "
                                                                    "opened") from None
            raise MachinesError(f"{PROVIDER}_unauthorized", f"K8S_TOKEN_FILE {path} cannot be read "
                                f"({type(exc).__name__}): mount the dispatcher's ServiceAccount token there") from None
        return self._token[1]

    async def request(self, method: str, path: str = "", **kw: Any) -> HttpResponse:
        """A call on the namespace's pods (`path` after `.../pods`)."""
        return await self.call(method, self.pods_path + path, **kw)

    async def call(self, method: str, path: str, *, client: HttpClient | None = None, backoff: Backoff | None = None,
                   **kw: Any) -> HttpResponse:
        """A call on any of the API server's paths, retried as the module says."""
        headers = {**kw.pop("headers", {}), "Authorization": f"Bearer {self._bearer()}", "Accept": "application/json"}
        return await provider_request(PROVIDER, client or self._client, method, path, backoff=backoff or self._backoff,
                                      error=MachinesError, headers=headers, **kw)

    @asynccontextmanager
    async def stream(self, path: str, params: dict[str, str], *, seconds: float) -> AsyncIterator[StreamedAnswer]:
        """A GET whose answer is read as it arrives (a watch), never retried here: the watch's caller
        restarts it (k8s/watch.py). `seconds` bounds the whole stream, past the watch's own end."""
        headers = {"Authorization": f"Bearer {self._bearer()}", "Accept": "application/json"}
        async with self._client.lines("GET", path, params=params, headers=headers,
                                      timeout=seconds + self.settings.timeout) as answer:
            yield answer

    async def review(self, token: str) -> HttpResponse:
        """A TokenReview of a bot's projected token for voicefleet's audience (authentication.k8s.io/v1):
        once, on the reviews' own client (the module says why)."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": token, "audiences": [self.settings.token_audience]}}
        return await self.call("POST", TOKEN_REVIEWS, json=body, client=self._reviews, backoff=self.once)

    async def own_audiences(self) -> list[str]:
        """The API server's own audiences, as a TokenReview of the dispatcher's token asking none reports
        them (a review with no `audiences` is for the API server's); [] when it cannot say."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": self._bearer()}}
        response = await self.call("POST", TOKEN_REVIEWS, json=body)
        if response.status_code not in (200, 201):
            return []
        status = (response.json() or {}).get("status") or {}
        return [str(a) for a in status.get("audiences") or []] if status.get("authenticated") else []

    @staticmethod
    def failed(response: HttpResponse, what: str, rbac: str = POD_VERBS) -> MachinesError:
        """The refusal as a MachinesError; `rbac` names what the dispatcher's ServiceAccount must be allowed."""
        reason, message = status_of(response)
        status = response.status_code
        if quota_exceeded(response):
            full = refusal(MachinesError, PROVIDER, status,
                           f"the namespace's ResourceQuota refused to {what}: {message[:300]} (raise the quota, "
                           "or lower MAX_CONCURRENT_SESSIONS and the reserve to fit it)",
                           capacity_retry_after=CAPACITY_RETRY_AFTER)
            # The dispatcher's own words, naming what ran out (the quota's name and figures stay in the log).
            resources = " and ".join(quota_resources(message))
            full.public_message = "the cluster's bot namespace is at " + (
                f"its quota of {resources}" if resources else "a quota") + "; try again later"
            return full
        if status == 403 and admission_refused(message):
            # Not the RBAC's: the same call fails again until the object, or the policy, changes.
            return refusal(MachinesError, PROVIDER, None, (
                f"the cluster's admission refused to {what}: {message[:400]} (not the token or RBAC: the object "
                "breaks the namespace's admission policy or Pod Security; a voicefleet stack's policy admits only "
                "what its own dispatcher builds, so run the dispatcher, settings and bot image the stack's last "
                f"`pulumi up` deployed, or `up` after changing them: {BOT_POLICY})"))
        if status in (401, 403):
            message = (f"the API server refused to {what}: {reason} {message[:300]} (check K8S_TOKEN_FILE and that "
                       f"the dispatcher's ServiceAccount may {rbac} in K8S_NAMESPACE)")
        else:
            message = f"the API server refused to {what}: HTTP {status} {reason} {message[:300]}"
        return refusal(MachinesError, PROVIDER, status, message)

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._reviews.aclose()
