"""A fake Azure Resource Manager for Container Instances: the calls the aci provider makes, as strict as ARM.

Served over TLS with a self-signed certificate (`cert_path` is what a test trusts: ACI_CA_BUNDLE),
because a bearer token must never go over http. Every ARM call needs `api-version` (400
`MissingApiVersionParameter`), one Microsoft.ContainerInstance publishes (400
`NoRegisteredProviderFound`), and `Authorization: Bearer <token>` from the fake's own token endpoint
(`POST /<tenant>/oauth2/v2.0/token`, the client-credentials grant, 400 `invalid_resource` for a
scope of a resource Entra does not know), issued for ARM's scope (`https://management.azure.com/.default`
wherever ARM is reached; else 401 `InvalidAuthenticationToken`; tests/fakes/key_vault.py takes the
ones issued for Key Vault's).
`PUT …/containerGroups/<name>` validates the group name (1–63 lowercase alphanumerics or '-') and
environment names (1–63 alphanumerics or '_', neither first nor last '_'), the properties ACI
requires (`osType` Linux or Windows, `restartPolicy` and `sku` among theirs, each container's name
as a group's, its image, its cpu and memoryInGB requests), refuses an image its registry does not hold
(`registry`: the deployment's `ACI_BOT_IMAGE` to begin with) as ARM does at the PUT, 400
`InaccessibleImage` "The image '<image>' in container group '<name>' is not accessible. Please check
the image and registry credential.", refuses past the group quota (400
`ContainerGroupQuotaReached`) or the region's cores (`core_quota`, 400 `StandardCoresQuotaReached`)
and answers 201 with `Azure-AsyncOperation`; a PUT on an
existing group *updates* it (200; If-None-Match is ignored: whether ACI honours it is undocumented,
so the fake takes the worst case). GET never returns a `secureValue`. `restartPolicy` defaults to
Always, and a group left so restarts its container when it ends. `PATCH` is ContainerGroups_Update,
whose body is ARM's `Resource`: its `tags` replace the group's whole set (absent: left as they are),
`location` and `zones` are taken and change nothing, anything else is refused; the container runs
on. DELETE answers 202 with `Location`, 204 for a group that is not there; the group is then
`Deleting` (its container sent SIGTERM; a PUT of its name 409 `Conflict`) and gone once its container
has stopped (`deleting_seconds` for a group with no process); `standing()` leaves it out. `launcher` set: each
created group runs a real process (the bot) with the group's environment, secure values included,
as its container; its exit is the container's Terminated state with its exit code (a signal N as
128 + N), a DELETE sends it SIGTERM, `lose` kills it. Writes and reads draw on buckets as ARM's do
(429 `SubscriptionRequestsThrottled` with Retry-After; every answer carries
`x-ms-ratelimit-remaining-subscription-reads|writes`); creates plus deletes past 100 in 5 minutes
or 300 in an hour are 429 too (ACI's error code for these is undocumented). Lists page by `nextLink`.
`policy` set (a Deny rule, as stacks/azure/launch_policy.py writes it): every PUT and PATCH body is
evaluated against it as sent (tests/support/azure_policy.py), 403 `RequestDisallowedByPolicy`.
A Container App's revisions (`container_apps`: app → each revision's running replicas) are listed
as the drain reads them (`properties.replicas`).
Subscriptions are apart, as ARM's are: another subscription's resource group (`add_subscription`)
holds its own groups, write and read buckets, create budget and quotas, and a group in one is not seen
from another. A token is the tenant's; what it may touch is its principal's role assignments (`roles`:
client → scopes, the dispatcher's on this resource group): a call on any other scope, or one that does
not exist, is 403 `AuthorizationFailed` before anything else is said of it (learn.microsoft.com/azure/
role-based-access-control/troubleshooting), and a granted scope with no such resource group 404
`ResourceGroupNotFound`. A PUT whose `subnetIds` name a subnet its principal may not join (`joins`: client →
scopes of its `subnets/join/action`) is 403 `LinkedAuthorizationFailed`, as ARM checks a request's linked scopes.
"""

from __future__ import annotations

import datetime
import itertools
import re
import secrets
import signal
import ssl
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import FakeApi, Handler
from tests.support.azure_policy import denies
from tests.support.ports import free_port
from tests.support.quick_uvicorn import QuickServer

SUBSCRIPTION, RESOURCE_GROUP, LOCATION = "00000000-0000-0000-0000-0000000000aa", "vf-test", "westeurope"
TENANT, CLIENT_ID, CLIENT_SECRET = "tenant-1", "client-1", "client-secret-1"
IMAGE = "vftest.azurecr.io/bot@sha256:" + "0" * 64
ARM_SCOPE = "https://management.azure.com/.default"  # what Entra issues ARM's tokens for, wherever ARM is reached
VAULT_SCOPE = "https://vault.azure.net/.default"
# Microsoft.ContainerInstance's stable api-versions (azure-rest-api-specs); another is refused.
ACI_API_VERSIONS = frozenset({"2018-04-01", "2018-06-01", "2018-09-01", "2018-10-01", "2019-12-01", "2020-11-01",
                              "2021-03-01", "2021-07-01", "2021-09-01", "2021-10-01", "2022-09-01", "2023-05-01",
                              "2025-09-01"})
CONTAINER_APPS_API_VERSIONS = frozenset({"2022-03-01", "2022-10-01", "2023-05-01", "2024-03-01", "2025-01-01"})
OS_TYPES, RESTART_POLICIES, SKUS = {"Linux", "Windows"}, {"Always", "OnFailure", "Never"}, {"Standard", "Dedicated",
                                                                                          "Confidential"}
_CONTAINER = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_GROUP = re.compile(r"^(?!.*--)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # no consecutive '-' either
_ENV = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_]{0,61}[A-Za-z0-9])?$")


def arm_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _cores(properties: dict[str, Any]) -> float:
    return float(sum(float(((c.get("properties") or {}).get("resources") or {}).get("requests", {}).get("cpu") or 0)
                     for c in properties.get("containers") or []))


def _group_problem(properties: Any) -> tuple[str, str] | None:
    """ACI's refusal of a group's properties (code, message): what the API requires and its enums."""
    if properties.get("osType") not in OS_TYPES:
        return "InvalidOsType", f"The 'osType' must be one of {sorted(OS_TYPES)}."
    if properties.get("restartPolicy", "Always") not in RESTART_POLICIES:
        return "InvalidRestartPolicy", f"The 'restartPolicy' must be one of {sorted(RESTART_POLICIES)}."
    if properties.get("sku", "Standard") not in SKUS:
        return "InvalidSku", f"The 'sku' must be one of {sorted(SKUS)}."
    for container in properties["containers"]:
        name, inner = str(container.get("name", "")), container.get("properties") or {}
        if not _CONTAINER.match(name):
            return "InvalidContainerName", f"The container name '{name}' is invalid."
        if not str(inner.get("image", "")).strip():
            return "InvalidContainerImage", f"The container '{name}' needs an image."
        requests = (inner.get("resources") or {}).get("requests") or {}
        try:
            cpu, memory = float(requests["cpu"]), float(requests["memoryInGB"])
        except (KeyError, TypeError, ValueError):
            return "InvalidContainerResources", f"The container '{name}' needs resources.requests cpu and memoryInGB."
        if cpu <= 0 or memory <= 0:
            return "InvalidContainerResources", f"The container '{name}' requests no cpu or memory."
    return None


class Bucket:
    def __init__(self, size: int, per_second: float) -> None:
        self.size, self.per_second, self.tokens, self.at = size, per_second, float(size), time.monotonic()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one is there."""
        now = time.monotonic()
        self.tokens = min(self.size, self.tokens + (now - self.at) * self.per_second)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.per_second


class TlsFake(FakeApi):
    """A fake served over TLS (`serve_tls`): `cert_path` is what a test trusts."""

    def __init__(self) -> None:
        super().__init__()
        self.cert_path, self.key_path = "", ""


class FakeArmAci(TlsFake):
    error_body = staticmethod(lambda status: {"error": {
        "code": "SubscriptionRequestsThrottled" if status == 429 else "InternalServerError", "message": "injected"}})

    def __init__(self, subscription: str = SUBSCRIPTION, resource_group: str = RESOURCE_GROUP,
                 location: str = LOCATION) -> None:
        super().__init__()
        self.subscription, self.resource_group, self.location = subscription, resource_group, location
        # Other subscriptions' resource groups this ARM serves (`add_subscription`): each its own groups,
        # buckets and budgets; and what each principal holds a role on (ARM's RBAC: a token is the tenant's,
        # a role assignment is a scope's). The dispatcher's is this resource group's.
        self.others: dict[tuple[str, str], FakeArmAci] = {}
        self.roles: dict[str, set[str]] = {CLIENT_ID: {self.scope}}
        # client → the scopes whose subnets it may join (`subnets/join/action`, a role of its own: the launch
        # role does not hold it). The dispatcher's: this subscription's networks, where the tests' subnets are.
        self.joins: dict[str, set[str]] = {CLIENT_ID: {f"/subscriptions/{subscription}"}}
        self.principals: dict[str, str] = {}  # token → the client it was issued to
        self.groups: dict[str, dict[str, Any]] = {}
        self.registry: set[str] = {IMAGE}  # the images a group may run (a test adds a release's)
        self.secure: dict[str, dict[str, str]] = {}  # group → its environment as sent (tests read it)
        self.operations: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []  # every group name ever created
        self.quota = 100
        self.core_quota = 100.0  # the region's StandardCores: every group's containers' cpu requests
        self.deleting_seconds = 0.05  # a deleted group with no container process stays Deleting this long
        self.page_size = 100
        self.writes, self.reads = Bucket(200, 10.0), Bucket(250, 25.0)
        self.changes: deque[float] = deque()  # creates and deletes, for the 5-minute and hourly budgets
        self.create_error: str | None = None  # set: accepted creates fail in their async operation
        self.tokens: dict[str, str] = {}  # token → the scope it was issued for (ARM's, Key Vault's)
        self.arm_scope = ARM_SCOPE  # another cloud's ARM: its own audience
        # (group name, its environment) -> the process its container runs; None: states move only when a test says
        self.launcher: Callable[[str, dict[str, str]], subprocess.Popen[bytes]] | None = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.container_apps: dict[str, list[int]] = {}  # the dispatcher's app → its revisions' replicas
        self.policy: dict[str, Any] | None = None  # a Deny rule every PUT and PATCH body must pass
        self._ids = itertools.count(1)
        self._groups_lock = threading.RLock()  # the groups, between the server's thread and the processes' watchers

    @property
    def scope(self) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"

    @property
    def groups_path(self) -> str:
        return f"{self.scope}/providers/Microsoft.ContainerInstance/containerGroups"

    def add_subscription(self, subscription: str, resource_group: str, location: str = LOCATION, *,
                         granted: bool = True) -> FakeArmAci:
        """Another subscription's resource group, served at this ARM (its state is the one returned);
        `granted`: the dispatcher's client holds a role on that resource group."""
        other = FakeArmAci(subscription, resource_group, location)
        other.registry, other.tokens = self.registry, self.tokens  # one tenant: one registry, one token issuer
        self.others[(subscription.lower(), resource_group.lower())] = other
        if granted:
            self.roles[CLIENT_ID].add(other.scope)
        return other

    @property
    def env(self) -> dict[str, str]:
        return {"MACHINES": "aci", "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION, "AZURE_RESOURCE_GROUP": RESOURCE_GROUP,
                "AZURE_LOCATION": LOCATION, "ACI_BOT_IMAGE": IMAGE, "ARM_ENDPOINT": self.url,
                "ACI_CA_BUNDLE": self.cert_path, "AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT_ID,
                "AZURE_CLIENT_SECRET": CLIENT_SECRET, "AZURE_AUTHORITY_HOST": self.url, "ACI_POLL_SECONDS": "0.05"}

    def routes(self) -> list[Route]:
        g = "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.ContainerInstance/" \
            "containerGroups"
        return [
            Route(g, self.list_groups, methods=["GET"]),
            Route(g + "/{name}", self.put, methods=["PUT"]),
            Route(g + "/{name}", self.get, methods=["GET"]),
            Route(g + "/{name}", self.patch, methods=["PATCH"]),
            Route(g + "/{name}", self.delete, methods=["DELETE"]),
            Route("/subscriptions/{subscription}/providers/Microsoft.ContainerInstance/locations/{location}"
                  "/operations/{op}", self.operation, methods=["GET"]),
            Route("/{tenant}/oauth2/v2.0/token", self.token, methods=["POST"]),
            Route("/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.App"
                  "/containerApps/{app}/revisions", self.revisions, methods=["GET"]),
        ]

    def _target(self, request: Request) -> FakeArmAci | None:
        """The subscription's resource group a request names (None: none this ARM serves)."""
        subscription, group = request.path_params.get("subscription", ""), request.path_params.get("resource_group")
        if group is None:  # a subscription's operation in a location: of a resource group of it there
            location = request.path_params.get("location", "").lower()
            return next((f for f in (self, *self.others.values()) if f.subscription.lower() == subscription.lower()
                         and f.location.lower() == location), None)
        if (subscription.lower(), group.lower()) == (self.subscription.lower(), self.resource_group.lower()):
            return self
        return self.others.get((subscription.lower(), group.lower()))

    def _authorized(self, principal: str | None, request: Request) -> bool:
        """Whether the principal holds a role on the request's scope (its resource group, or any of the
        subscription's for an operation it started) or above it (the subscription)."""
        subscription = f"/subscriptions/{request.path_params.get('subscription', '')}".lower()
        group = request.path_params.get("resource_group")
        scope = f"{subscription}/resourcegroups/{group}".lower() if group is not None else subscription
        held = [s.lower() for s in self.roles.get(principal or "", ())]
        return any(scope == s or scope.startswith(s + "/") or (group is None and s.startswith(scope + "/"))
                   for s in held)

    async def _unjoined(self, principal: str | None, request: Request) -> Response | None:
        """ARM's check of a PUT's linked scopes: a subnet the caller may not join is 403
        `LinkedAuthorizationFailed`, nothing made (its wording: github.com/microsoft/planetary-computer-hub/pull/25)."""
        try:
            linked = (await request.json()).get("properties", {}).get("subnetIds") or []
            subnets = [str(s.get("id", "")) for s in linked]
        except (ValueError, AttributeError):
            return None  # the resource provider answers a body it cannot read
        held = [s.lower() for s in self.joins.get(principal or "", ())]
        for subnet in subnets:
            if not any(subnet.lower() == s or subnet.lower().startswith(s + "/") for s in held):
                return arm_error(403, "LinkedAuthorizationFailed", f"The client '{principal}' has permission to "
                                 "perform action 'Microsoft.ContainerInstance/containerGroups/write' on scope "
                                 f"'{request.url.path}'; however, it does not have permission to perform action(s) "
                                 f"'Microsoft.Network/virtualNetworks/subnets/join/action' on the linked scope(s) "
                                 f"'{subnet}' (respectively) or the linked scope(s) are invalid.")
        return None

    def _wrap(self, endpoint: Handler) -> Handler:
        async def arm(request: Request) -> Response:
            if not request.url.path.startswith("/subscriptions/"):
                return await endpoint(request)
            if "api-version" not in request.query_params:
                return arm_error(400, "MissingApiVersionParameter",
                                 "The api-version query parameter (?api-version=) is required for all requests.")
            version = request.query_params["api-version"]
            known = CONTAINER_APPS_API_VERSIONS if "/Microsoft.App/" in request.url.path else ACI_API_VERSIONS
            if version not in known:
                return arm_error(400, "NoRegisteredProviderFound", f"No registered resource provider found for "
                                 f"location '{LOCATION}' and API version '{version}'.")
            auth = request.headers.get("authorization", "")
            token = auth.removeprefix("Bearer ")
            scope = self.tokens.get(token) if auth.startswith("Bearer ") else None
            if scope != self.arm_scope:
                return arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.")
            write = request.method != "GET"
            # ARM's RBAC, before it says whether the scope exists (a scope not granted reads the same as one
            # that is not there): 403 AuthorizationFailed, as learn.microsoft.com/azure/role-based-access-control/
            # troubleshooting words it.
            if not self._authorized(self.principals.get(token), request):
                action = "write" if write else "read"
                return arm_error(403, "AuthorizationFailed", f"The client '{self.principals.get(token)}' does not "
                                 f"have authorization to perform action 'Microsoft.ContainerInstance/containerGroups/"
                                 f"{action}' over scope '{request.url.path}' or the scope is invalid.")
            if request.method == "PUT" and (unjoined := await self._unjoined(self.principals.get(token), request)):
                return unjoined
            target = self._target(request)
            if target is None:
                return arm_error(404, "ResourceGroupNotFound", f"Resource group "
                                 f"'{request.path_params.get('resource_group')}' could not be found.")
            endpoint_here: Handler = endpoint
            if target is not self:  # another subscription: its own state, buckets and budgets
                target.url = self.url
                endpoint_here = getattr(target, endpoint.__name__)
            bucket = target.writes if write else target.reads
            wait = bucket.take()
            kind = "writes" if write else "reads"
            headers = {f"x-ms-ratelimit-remaining-subscription-{kind}": str(int(bucket.tokens))}
            if wait:
                headers["Retry-After"] = str(max(1, round(wait)))
                return arm_error(429, "SubscriptionRequestsThrottled",
                                 "Number of requests for subscription exceeded the limit.", headers)
            response = await endpoint_here(request)
            response.headers.update(headers)
            return response

        return super()._wrap(arm)

    async def token(self, request: Request) -> Response:
        form = dict(await request.form())
        if (request.path_params["tenant"], form.get("client_id"), form.get("client_secret")) != (
                TENANT, CLIENT_ID, CLIENT_SECRET) or form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        scope = str(form.get("scope", ""))
        if scope not in (self.arm_scope, VAULT_SCOPE):  # Entra knows the resources of its cloud only
            return JSONResponse({"error": "invalid_resource", "error_description": "AADSTS500011: The resource "
                                 f"principal named {scope.removesuffix('.default')} was not found in the tenant"},
                                status_code=400)
        token = secrets.token_urlsafe(24)
        self.tokens[token] = scope
        self.principals[token] = str(form.get("client_id"))
        return JSONResponse({"token_type": "Bearer", "expires_in": 3599, "access_token": token})

    def _budget(self) -> float:
        """0 when a create or delete may go now, else seconds until it may (ACI's regional budgets)."""
        now = time.time()
        while self.changes and self.changes[0] < now - 3600:
            self.changes.popleft()
        last5 = [t for t in self.changes if t >= now - 300]
        if len(last5) >= 100:
            return last5[0] + 300 - now
        if len(self.changes) >= 300:
            return self.changes[0] + 3600 - now
        self.changes.append(now)
        return 0.0

    def _view(self, name: str) -> dict[str, Any]:
        with self._groups_lock:
            return self._copy(self.groups[name])

    @staticmethod
    def _copy(group: dict[str, Any]) -> dict[str, Any]:
        copy = {**group, "properties": {**group["properties"], "containers": [
            {**c, "properties": {**c["properties"], "environmentVariables": [
                {k: v for k, v in e.items() if k != "secureValue"} for e in c["properties"]["environmentVariables"]]}}
            for c in group["properties"]["containers"]]}}
        return copy

    async def put(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not _GROUP.match(name):
            return arm_error(400, "InvalidContainerGroupName", f"The container group name '{name}' is invalid.")
        body = await request.json()
        if refused := self._disallowed(body):
            return refused
        containers = body.get("properties", {}).get("containers") or []
        env = [e for c in containers for e in c.get("properties", {}).get("environmentVariables", [])]
        if bad := [e.get("name", "") for e in env if not _ENV.match(e.get("name", ""))]:
            return arm_error(400, "InvalidEnvironmentVariableName", f"Environment variable name '{bad[0]}' is invalid.")
        if body.get("location") != self.location or not containers:
            return arm_error(400, "InvalidRequestContent", "location and containers are required")
        if problem := _group_problem(body["properties"]):
            return arm_error(400, *problem)
        images = [str(c["properties"]["image"]) for c in containers]
        if missing := [image for image in images if image not in self.registry]:
            return arm_error(400, "InaccessibleImage", f"The image '{missing[0]}' in container group '{name}' is not "
                             "accessible. Please check the image and registry credential.")
        update = name in self.groups
        if update and self.groups[name]["properties"]["provisioningState"] == "Deleting":
            return arm_error(409, "Conflict", f"The container group '{name}' is being deleted.")
        cores = sum(_cores(g["properties"]) for n, g in self.groups.items() if n != name)
        if cores + _cores(body["properties"]) > self.core_quota:
            return arm_error(400, "StandardCoresQuotaReached",
                             f"Resource type 'Microsoft.ContainerInstance/containerGroups' cores quota 'StandardCores' "
                             f"exceeded in region '{self.location}'. Limit: '{self.core_quota:g}', Usage: '{cores:g}'.")
        if not update and len(self.groups) >= self.quota:
            return arm_error(400, "ContainerGroupQuotaReached",
                             f"Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota "
                             f"'StandardCores' exceeded in region '{self.location}'. Limit: '{self.quota}'.")
        if not update and (wait := self._budget()):
            return arm_error(429, "TooManyRequests", "container group create/delete budget spent",
                             {"Retry-After": str(max(1, round(wait)))})
        op = f"op-{next(self._ids)}"
        operation_url = self._operation_url(op)
        if self.create_error and not update:
            self.operations[op] = {"status": "Failed", "error": {"code": self.create_error, "message": "failed"}}
            return JSONResponse({**body, "name": name}, status_code=201,
                                headers={"Azure-AsyncOperation": operation_url})
        self.operations[op] = {"status": "Succeeded"}
        properties = {**body["properties"], "provisioningState": "Creating",
                      "restartPolicy": body["properties"].get("restartPolicy", "Always"),
                      "instanceView": {"state": "Pending"}}
        for c in properties["containers"]:
            c["properties"]["instanceView"] = {"currentState": {"state": "Waiting", "detailStatus": "Pulling"}}
        self.groups[name] = {"id": f"{self.groups_path}/{name}", "name": name, "location": self.location,
                             "type": "Microsoft.ContainerInstance/containerGroups",
                             "tags": dict(body.get("tags") or {}), "properties": properties,
                             **({"identity": body["identity"]} if "identity" in body else {})}
        self.secure[name] = {e["name"]: e.get("secureValue", e.get("value", "")) for e in env}
        if not update:
            self.created.append(name)
            if self.launcher is not None:
                self._start(name)
        return JSONResponse(self._view(name), status_code=200 if update else 201,
                            headers={"Azure-AsyncOperation": operation_url})

    def standing(self) -> dict[str, dict[str, Any]]:
        """The groups not being deleted (a deleted one is `Deleting` until its container has stopped)."""
        with self._groups_lock:
            return {n: g for n, g in self.groups.items() if g["properties"]["provisioningState"] != "Deleting"}

    def set_state(self, name: str, state: str, exit_code: int | None = None) -> None:
        """"Waiting", "Running" or "Terminated" (with its exit code), as the group's container reports it."""
        with self._groups_lock:
            group = self.groups[name]["properties"]
            current: dict[str, Any] = {"state": state, "detailStatus": ""}
            if state == "Terminated":
                current["exitCode"] = exit_code
                if self._restarts(name, exit_code):
                    current = {"state": "Running", "detailStatus": "restarted"}  # a replayed session
            group["provisioningState"] = "Succeeded" if state != "Waiting" else "Creating"
            group["instanceView"] = {"state": {"Running": "Running", "Terminated": "Succeeded"}.get(current["state"],
                                                                                                    "Pending")}
            group["containers"][0]["properties"]["instanceView"] = {"currentState": current}

    def _restarts(self, name: str, exit_code: int | None) -> bool:
        policy = self.groups[name]["properties"]["restartPolicy"]
        return bool(policy == "Always" or (policy == "OnFailure" and exit_code))

    def _start(self, name: str) -> None:
        """The group's container: a process with the group's environment, watched until it exits."""
        assert self.launcher is not None
        process = self.launcher(name, dict(self.secure[name]))
        with self._groups_lock:
            self.processes[name] = process
            self.set_state(name, "Running")

        def watch() -> None:
            code = process.wait()
            code = 128 - code if code < 0 else code  # killed by signal N: the container's 128 + N
            with self._groups_lock:
                if self.processes.get(name) is not process or name not in self.groups:
                    return  # deleted: nothing left to report on
                if self.groups[name]["properties"]["provisioningState"] == "Deleting":
                    self._deleted(name)  # its container has stopped: the group is gone
                    return
                if self._restarts(name, code):
                    self._start(name)  # ACI runs the container again, with the same values
                else:
                    self.set_state(name, "Terminated", code)

        threading.Thread(target=watch, daemon=True, name=f"aci-{name}").start()

    def lose(self, name: str) -> None:
        """The container dies under its session (its host failed): no goodbye, exit 137."""
        process = self.processes.get(name)
        if process is not None and process.poll() is None:
            process.kill()
        else:
            self.set_state(name, "Terminated", 137)

    def close(self) -> None:
        for process in list(self.processes.values()):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)

    async def get(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.groups:
            return arm_error(404, "ResourceNotFound", f"The Resource '{name}' was not found.")
        return JSONResponse(self._view(name))

    def _disallowed(self, body: Any) -> Response | None:
        """The policy's refusal of a request body (ARM's answer to a Deny), or None."""
        if self.policy is None or not denies(self.policy, "Microsoft.ContainerInstance/containerGroups", body):
            return None
        return arm_error(403, "RequestDisallowedByPolicy", "Resource was disallowed by policy.")

    async def patch(self, request: Request) -> Response:
        """ACI's Update: tags only."""
        name = request.path_params["name"]
        if name not in self.groups:
            return arm_error(404, "ResourceNotFound", f"The Resource '{name}' was not found.")
        body = await request.json()
        if refused := self._disallowed(body):
            return refused
        if not isinstance(body, dict) or set(body) - {"tags", "location", "zones"}:
            return arm_error(400, "InvalidRequestContent", "a container group's update takes tags only")
        if not isinstance(body.get("tags", {}), dict):
            return arm_error(400, "InvalidRequestContent", "tags must be an object of strings")
        with self._groups_lock:
            if "tags" in body:
                self.groups[name]["tags"] = {str(k): str(v) for k, v in body["tags"].items()}
        return JSONResponse(self._view(name))

    async def delete(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.groups:
            return Response(status_code=204)
        if wait := self._budget():
            return arm_error(429, "TooManyRequests", "container group create/delete budget spent",
                             {"Retry-After": str(max(1, round(wait)))})
        with self._groups_lock:
            if self.groups[name]["properties"]["provisioningState"] == "Deleting":
                return Response(status_code=202, headers={"Location": self._operation_url(self._succeeded())})
            self.groups[name]["properties"]["provisioningState"] = "Deleting"
            process = self.processes.get(name)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)  # the container is stopped with its group, then the group goes
        else:
            timer = threading.Timer(self.deleting_seconds, self._deleted, (name,))
            timer.daemon = True
            timer.start()
        return Response(status_code=202, headers={"Location": self._operation_url(self._succeeded())})

    def _succeeded(self) -> str:
        op = f"op-{next(self._ids)}"
        self.operations[op] = {"status": "Succeeded"}
        return op

    def _operation_url(self, op: str) -> str:
        return (f"{self.url}/subscriptions/{self.subscription}/providers/Microsoft.ContainerInstance/locations/"
                f"{self.location}/operations/{op}?api-version=2023-05-01")

    def _deleted(self, name: str) -> None:
        """A Deleting group is gone (its container has stopped)."""
        with self._groups_lock:
            group = self.groups.get(name)
            if group is not None and group["properties"]["provisioningState"] == "Deleting":
                del self.groups[name]

    async def operation(self, request: Request) -> Response:
        op = self.operations.get(request.path_params["op"])
        if op is None:
            return arm_error(404, "OperationNotFound", "no such operation")
        return JSONResponse(op)

    async def revisions(self, request: Request) -> Response:
        app = request.path_params["app"]
        if app not in self.container_apps:
            return arm_error(404, "ResourceNotFound", f"The Resource 'Microsoft.App/containerApps/{app}' "
                             "was not found.")
        return JSONResponse({"value": [
            {"name": f"{app}--r{i}", "type": "Microsoft.App/containerApps/revisions",
             "properties": {"active": i == len(self.container_apps[app]) - 1, "replicas": replicas,
                            "runningState": "Running" if replicas else "Stopped"}}
            for i, replicas in enumerate(self.container_apps[app])]})

    async def list_groups(self, request: Request) -> Response:
        start = int(request.query_params.get("$skipToken", "0"))
        with self._groups_lock:
            names = list(self.groups)
            page: dict[str, Any] = {"value": [self._view(n) for n in names[start:start + self.page_size]]}
        if start + self.page_size < len(names):
            skip = start + self.page_size
            page["nextLink"] = f"{self.url}{self.groups_path}?api-version=2023-05-01&$skipToken={skip}"
        return JSONResponse(page)


def self_signed(directory: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, as files (the test trusts the certificate)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


Served = TypeVar("Served", bound=TlsFake)


@contextmanager
def serve_tls(fake: Served, like: TlsFake | None = None) -> Iterator[Served]:
    """`fake` on a free port over TLS, with a new certificate or (`like`) another fake's: one file to trust."""
    with tempfile.TemporaryDirectory() as directory:
        cert, key = (like.cert_path, like.key_path) if like is not None else self_signed(Path(directory))
        port = free_port()
        config = uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                ssl_certfile=cert, ssl_keyfile=key, ssl_version=ssl.PROTOCOL_TLS_SERVER)
        server = QuickServer(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("fake ARM did not start")
            time.sleep(0.01)
        fake.url, fake.cert_path, fake.key_path = f"https://127.0.0.1:{port}", cert, key
        try:
            yield fake
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            fake.close()
