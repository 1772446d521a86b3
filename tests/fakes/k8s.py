"""A fake Kubernetes API server: exactly the pod paths `MACHINES=k8s` (pods mode) calls, as strict as the real one.

`/api/v1/namespaces/<ns>/pods` (POST, GET list) and `/pods/<name>` (GET, PATCH, DELETE), with a
bearer token (401 Unauthorized without the right one; 403 Forbidden in a namespace its RBAC does
not cover). Answers and refusals are the API server's: the object itself, or a `Status`
(`kind`, `status: Failure`, `message`, `reason`, `code`). Every write bumps the namespace's
`resourceVersion`, and so does every status change (the kubelet's writes), as on a real cluster.

- POST validates the Pod against the real v1 Pod schema with `kubernetes-validate` in strict mode:
  an unknown field is 400 BadRequest `strict decoding error` under `?fieldValidation=Strict`, and
  a `Warning` header otherwise (the API server's default, Warn); any other schema error is 422
  Invalid; then the API server's semantic checks the schema cannot express (tests/fakes/k8s_pod_spec.py:
  a projected token's expiry, mounts naming volumes, requests within limits), 422 Invalid. An empty
  `labels` or `annotations` map is not stored (ObjectMeta's `omitempty`), on a
  create or a patch. Names are DNS-1123 subdomains, label keys and values are checked as the API server
  checks them, a taken name is 409 AlreadyExists, and the namespace enforces Pod Security
  `restricted` (403 Forbidden `violates PodSecurity`). `quota` set: a ResourceQuota on pods,
  403 Forbidden `exceeded quota` past it. `admitted_images` set: the stack's admission policy refuses a
  pod running another image (403 Forbidden, in the ValidatingAdmissionPolicy plugin's words).
- LIST takes `labelSelector` (=, ==, !=, in, notin, exists, !exists; a malformed one is 400),
  `fieldSelector`, `limit` and `continue`; its `resourceVersion` is the newest change's. With
  `watch=1` it is a watch: tests/fakes/k8s_watch.py (410 Gone past the bounded history, `timeoutSeconds`).
- PATCH takes `application/json-patch+json` (RFC 6902 through the `jsonpatch` library: a failed
  `test` is 422, as kubernetes/kubernetes#68346 made it), `application/merge-patch+json` and
  `application/strategic-merge-patch+json` (applied as a merge patch); anything else is 415. A patch
  may change labels and annotations only (the rest of a Pod is immutable for what is sent here): 422. A
  `metadata.resourceVersion` the patched object carries is the update's precondition: 409 Conflict when stale.
- `POST /apis/authentication.k8s.io/v1/tokenreviews`: a pod's projected token (issued at its create,
  for its `audience`, written to a file whose path its process gets as `BOT_K8S_TOKEN_FILE`, as the
  kubelet mounts it) is authenticated while that pod (that uid) exists, for the audiences asked that
  it was issued for, naming the pod in `extra` as the API server does; the dispatcher's own token
  (`token`: TOKEN unless a test gives a second cluster its own, which alone it then accepts), for the
  API server's audiences (`api_audiences`), which a review asking none is of. A pod's token past its
  `exp` (`expirationSeconds` after its create, by `clock`) is not authenticated. A pod whose token was
  authenticated is in `reviewed_pods` (its bot has said its hello to whoever reviewed it).
- DELETE takes `DeleteOptions` in the body or the query, validated before anything is deleted
  (tests/fakes/k8s_delete.py: an unknown field 400, an unknown `propagationPolicy` 422, a precondition
  that differs 409) and its `gracePeriodSeconds`: the pod gets a
  `deletionTimestamp` and its bot SIGTERM, then SIGKILL past the grace period; it is gone once its
  process has exited. A pod with no process is gone at once: here that is a pod no node runs (the
  fake binds a pod to a node only with a `launcher`) or one whose bot has exited, which the API
  server deletes without a grace period (`CheckGracefulDelete`, kubernetes/kubernetes
  pkg/registry/core/pod/strategy.go). 404 NotFound for a pod that is not there.

`launcher` set: each created pod runs a real process (the bot) with the pod's env as its container;
its exit is the container's `terminated` state with its exit code and the pod's phase Succeeded or
Failed. `activeDeadlineSeconds` is not enforced (the tests' sessions are shorter than any deadline).
"""

from __future__ import annotations

import base64
import copy
import datetime
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import jsonpatch
import jsonpointer
import kubernetes_validate
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.k8s_delete import precondition_refusal, read_options
from tests.fakes.k8s_pod_spec import pod_spec_problems
from tests.fakes.k8s_schema import KUBE_VERSION
from tests.fakes.k8s_watch import METADATA_FIELDS, POD_FIELDS, WatchHistory, fields_match, parse_fields
from tests.fakes.kubelet_expansion import expand
from tests.fakes.server import FakeApi, Handler

POLICY = "voicefleet-bots-made-by-the-dispatcher"  # the stack's admission policy (stacks/k8s/admission.py)
NAMESPACE, TOKEN = "voicefleet-bots", "k8s-fake-token-0123456789abcdef"  # noqa: S105 - a fake's
IMAGE = "registry.example/voicefleet-bot@sha256:" + "0" * 64
SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_SELECTOR = re.compile(r"^\s*(?P<key>[^\s=!,()]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[^\s,()]*)"
                       r"|\s+(?P<set>in|notin)\s*\((?P<values>[^()]*)\))?\s*$")
EVICTED = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 82Mi."
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json")


def bound_token(pod: str, uid: str, audiences: tuple[str, ...], account: str, now: int, expires: int) -> str:
    """A pod's projected token as the API server signs one (a JWT; the signature random here): its claims
    laid out as kubernetes/kubernetes pkg/serviceaccount/claims.go lays them out."""
    claims = {"aud": list(audiences), "exp": expires, "iat": now, "nbf": now, "jti": str(uuid.uuid4()),
              "iss": "https://kubernetes.default.svc.cluster.local",
              "sub": f"system:serviceaccount:{NAMESPACE}:{account}",
              "kubernetes.io": {"namespace": NAMESPACE, "pod": {"name": pod, "uid": uid},
                                "serviceaccount": {"name": account, "uid": str(uuid.uuid4())}}}

    def part(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode()

    header = json.dumps({"alg": "RS256", "kid": "fake"}).encode()
    return ".".join((part(header), part(json.dumps(claims).encode()), part(secrets.token_bytes(256))))


def status(code: int, reason: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                         "message": message, "reason": reason, "code": code}, status_code=code, headers=headers)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def without_empty_maps(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata as the API server stores it: ObjectMeta's `labels` and `annotations` are `omitempty`, so an
    empty map is not kept (a JSON Patch `add` under it then has no parent: 422)."""
    for key in ("labels", "annotations"):
        if key in metadata and not metadata[key]:
            del metadata[key]
    return metadata


def label_problem(labels: Any) -> str | None:
    if not isinstance(labels, dict):
        return "metadata.labels: must be an object of strings"
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (prefix and (len(prefix) > 253 or not SUBDOMAIN.match(prefix))) or not _LABEL_NAME.match(name):
            return f"metadata.labels: Invalid value: {key!r}: name part must consist of alphanumeric characters"
        if not isinstance(value, str) or not _LABEL_VALUE.match(value):
            return f"metadata.labels: Invalid value: {value!r}: a valid label must be an empty string or " \
                   "consist of alphanumeric characters, '-', '_' or '.' (63 at most)"
    return None


def restricted_problem(spec: dict[str, Any]) -> str | None:
    """Pod Security `restricted` (kubernetes.io/docs/concepts/security/pod-security-standards), as sent here."""
    pod_context = spec.get("securityContext") or {}
    for container in spec.get("containers") or []:
        context = container.get("securityContext") or {}
        if context.get("allowPrivilegeEscalation") is not False:
            return "allowPrivilegeEscalation != false"
        if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
            return "unrestricted capabilities (container must set securityContext.capabilities.drop=[\"ALL\"])"
        if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
            return "runAsNonRoot != true"
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            return "seccompProfile (pod or container must set securityContext.seccompProfile.type)"
    for volume in spec.get("volumes") or []:
        if set(volume) - {"name", "projected", "configMap", "secret", "emptyDir", "downwardAPI",
                          "persistentVolumeClaim", "ephemeral", "csi"}:
            return f"restricted volume types ({volume.get('name')})"
    return None


Requirement = tuple[str, str, frozenset[str]]  # (key, operator: = != in notin exists !exists, values)


def matches(requirements: list[Requirement], labels: dict[str, str]) -> bool:
    for key, op, values in requirements:
        present = key in labels
        if (op == "exists" and not present) or (op == "!exists" and present) or (
                op in ("=", "in") and labels.get(key) not in values) or (
                op in ("!=", "notin") and present and labels[key] in values):
            return False
    return True


def parse_selector(raw: str) -> list[Requirement]:
    """A label selector's requirements; ValueError for one the API server would refuse."""
    parts, depth, current = [], 0, ""
    for char in raw:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    requirements: list[Requirement] = []
    for part in parts:
        if not part.strip():
            if raw.strip():
                raise ValueError(f"found '', expected: identifier in {raw!r}")
            continue
        negated = part.strip().startswith("!")
        match = _SELECTOR.match(part.strip().removeprefix("!"))
        if match is None or (negated and (match["op"] or match["set"])):
            raise ValueError(f"unable to parse requirement: {part!r}")
        key, op, value = match["key"], match["op"], match["value"]
        values = frozenset(v.strip() for v in match["values"].split(",")) if match["set"] else frozenset({value or ""})
        if any(label_problem({key: v}) for v in values):
            raise ValueError(f"invalid label key or value in {part!r}")
        if negated:
            requirements.append((key, "!exists", frozenset()))
        elif op:
            requirements.append((key, "=" if op == "==" else op, values))
        elif match["set"]:
            requirements.append((key, match["set"], values))
        else:
            requirements.append((key, "exists", frozenset()))
    return requirements


def container_env(container: dict[str, Any], secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """A container's environment as the kubelet makes it: each `envFrom` source's keys in order (a later
    source wins), then `env`, whose names win over any of them, each value's `$(NAME)` expanded from the
    variables before it (kubelet_pods.go makeEnvironmentVariables; tests/fakes/kubelet_expansion.py)."""
    found: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if ref := source.get("secretRef"):
            found |= {source.get("prefix", "") + key: value for key, value in secrets.get(ref["name"], {}).items()}
    for entry in container.get("env") or []:
        found[entry["name"]] = expand(entry.get("value", ""), found)
    return found


class FakeKubernetes(FakeApi):
    error_body = staticmethod(lambda code: {
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "message": "injected",
        "reason": "TooManyRequests" if code == 429 else "InternalError"})

    def __init__(self) -> None:
        super().__init__()
        self.pods: dict[str, dict[str, Any]] = {}
        self.token_file = ""  # where the test wrote the dispatcher's token (K8S_TOKEN_FILE)
        self.token = TOKEN  # the dispatcher's token this cluster accepts (another cluster's: its own)
        # A pod's projected ServiceAccount token → (pod name, its uid, its audiences, its ServiceAccount, its `exp`)
        self.pod_tokens: dict[str, tuple[str, str, tuple[str, ...], str, int]] = {}
        self.clock: Callable[[], float] = time.time  # the API server's: a token's `iat` and `exp` (a test moves it)
        # The API server's own audiences (`--api-audiences`): the dispatcher's token (TOKEN) is of these.
        self.api_audiences: tuple[str, ...] = ("https://kubernetes.default.svc.cluster.local",)
        self._token_dir = tempfile.mkdtemp(prefix="k8s-tokens-")  # each pod's token file, as mounted
        self.envs: dict[str, dict[str, str]] = {}  # pod → its container's env as the kubelet gives it (tests read it)
        # The namespace's Secrets (name → data), which a container's `envFrom` reads as the kubelet does.
        self.secrets: dict[str, dict[str, str]] = {}
        self.created: list[str] = []  # every pod name ever created
        self.quota: int | None = None  # a ResourceQuota's `pods`: pods not yet Succeeded or Failed
        # The stack's ValidatingAdmissionPolicy, as far as images go: set, a pod running another is refused.
        self.admitted_images: set[str] | None = None
        self.launcher: Callable[[str, dict[str, str]], subprocess.Popen[bytes]] | None = None
        self.reviewed_pods: set[str] = set()  # pods whose token a TokenReview authenticated (its bot's hello)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._failing: dict[str, tuple[str, str]] = {}  # pod → the kubelet's (reason, message) as it kills its bot
        self._versions = itertools.count(1000)
        self._latest = 0  # the newest version given to any object (etcd's revision)
        self._pods_lock = threading.RLock()  # the objects, between the server's thread and the processes' watchers
        # kind → its changes, for watches (a kind with none here is not watched by this fake)
        self.histories = {"Pod": WatchHistory(self._pods_lock, POD_FIELDS, lambda: self._latest)}
        self.watches = self.histories["Pod"]

    @property
    def env(self) -> dict[str, str]:
        return {"MACHINES": "k8s", "K8S_NAMESPACE": NAMESPACE, "K8S_API_URL": self.url, "BOT_IMAGE": IMAGE,
                "K8S_TOKEN_FILE": self.token_file, "K8S_POLL_SECONDS": "0.05"}

    def routes(self) -> list[Route]:
        pods = "/api/v1/namespaces/{namespace}/pods"
        return [Route("/apis/authentication.k8s.io/v1/tokenreviews", self.token_review, methods=["POST"]),
                Route(pods, self.create, methods=["POST"]), Route(pods, self.list_pods, methods=["GET"]),
                Route(pods + "/{name}", self.get, methods=["GET"]),
                Route(pods + "/{name}", self.patch, methods=["PATCH"]),
                Route(pods + "/{name}", self.delete, methods=["DELETE"])]

    def _wrap(self, endpoint: Handler) -> Handler:
        async def authorized(request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return status(401, "Unauthorized", "Unauthorized")
            namespace = request.path_params.get("namespace", NAMESPACE)  # tokenreviews: cluster-scoped
            if namespace != NAMESPACE:
                return status(403, "Forbidden", f'pods is forbidden: User "system:serviceaccount:voicefleet:'
                              f'dispatcher" cannot access resource "pods" in the namespace "{namespace}"')
            return await endpoint(request)

        return super()._wrap(authorized)

    def _bump(self, thing: dict[str, Any], change: str = "MODIFIED") -> None:
        """A write: the object's new version, and its change in its kind's history."""
        with self._pods_lock:
            self._latest = next(self._versions)
            thing["metadata"]["resourceVersion"] = str(self._latest)
            if (history := self.histories.get(str(thing.get("kind", "")))) is not None:
                history.record(change, thing)

    def _remove(self, name: str) -> dict[str, Any]:
        with self._pods_lock:
            pod = self.pods.pop(name)
            self._bump(pod, "DELETED")
            return pod

    # --- the kubelet's side: a pod's process and its status ---

    def set_phase(self, name: str, phase: str, exit_code: int | None = None, reason: str | None = None,
                  message: str | None = None) -> None:
        """Pending, Running, Succeeded or Failed (with the container's exit code, and the pod's `reason`
        and `message` when the kubelet failed it: `evict`), as the kubelet writes it."""
        with self._pods_lock:
            if phase == "Failed" and reason is None:
                reason, message = self._failing.pop(name, (None, None))
            pod = self.pods[name]
            state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
            if phase == "Running":
                state = {"running": {"startedAt": _now()}}
            elif phase in ("Succeeded", "Failed"):
                state = {"terminated": {"exitCode": exit_code or 0, "reason": "Completed" if not exit_code else "Error",
                                        "finishedAt": _now()}}
            pod["status"] = {"phase": phase, "containerStatuses": [{"name": "bot", "state": state, "ready": phase ==
                                                                    "Running", "restartCount": 0}]}
            if reason:
                pod["status"].update(reason=reason, message=message or f"the kubelet: {reason}")
            self._bump(pod)

    def evict(self, name: str, reason: str = "Evicted", message: str = EVICTED) -> None:
        """The kubelet fails the pod (node pressure: `Evicted`; past `activeDeadlineSeconds`:
        `DeadlineExceeded`, "Pod was active on the node longer than the specified deadline"): its bot is
        killed, so its container's exit code is 137, and the pod is Failed with the kubelet's reason."""
        with self._pods_lock:
            self._failing[name] = (reason, message)
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                self.set_phase(name, "Failed", 137)
                return
        process.kill()  # its watcher writes the Failed phase, with the reason

    def token_of(self, name: str) -> str | None:
        """The pod's projected token (what its containers read from the mounted file): the pod of that name
        now there, else any earlier one's."""
        uid = (self.pods.get(name) or {}).get("metadata", {}).get("uid")
        mine = [t for t, (pod, *_) in self.pod_tokens.items() if pod == name]
        return next((t for t in mine if self.pod_tokens[t][1] == uid), mine[0] if mine else None)

    def mounted_token(self, name: str) -> dict[str, str]:
        """The pod's projected volume as the kubelet mounts it for its containers: its token in a file,
        and the file's path as its bot reads it (`BOT_K8S_TOKEN_FILE`); none for a pod with no token."""
        if (token := self.token_of(name)) is None:
            return {}
        path = os.path.join(self._token_dir, name)
        with open(path, "w", encoding="utf-8") as file:
            file.write(token)
        return {"BOT_K8S_TOKEN_FILE": path}

    def _start(self, name: str) -> None:
        assert self.launcher is not None
        # The container runtime's HOSTNAME: the pod's name (a pool's bot says it in its hello).
        process = self.launcher(name, {**self.envs[name], **self.mounted_token(name), "HOSTNAME": name})
        with self._pods_lock:
            self.processes[name] = process
            self.set_phase(name, "Running")

        def watch() -> None:
            code = process.wait()
            code = 128 - code if code < 0 else code  # killed by signal N: the container's 128 + N
            with self._pods_lock:
                if name not in self.pods:
                    return
                if self.pods[name]["metadata"].get("deletionTimestamp"):
                    self._remove(name)  # its process has stopped: the deleted pod is gone
                    return
                self.set_phase(name, "Failed" if code else "Succeeded", code)

        threading.Thread(target=watch, daemon=True, name=f"k8s-{name}").start()

    def lose(self, name: str) -> None:
        """The pod's node dies under it: the process is killed, no goodbye."""
        process = self.processes.get(name)
        if process is not None and process.poll() is None:
            process.kill()
        else:
            self.set_phase(name, "Failed", 137)

    def standing(self) -> dict[str, dict[str, Any]]:
        """Pods that exist and are not being deleted."""
        with self._pods_lock:
            return {n: p for n, p in self.pods.items() if not p["metadata"].get("deletionTimestamp")}

    def close(self) -> None:
        for process in list(self.processes.values()):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        shutil.rmtree(self._token_dir, ignore_errors=True)

    # --- the API ---

    async def _json(self, request: Request) -> Any:
        try:
            return json.loads(await request.body() or b"null")
        except ValueError:
            return None

    async def create(self, request: Request) -> Response:
        validation = request.query_params.get("fieldValidation", "Warn")
        if validation not in ("Ignore", "Warn", "Strict"):
            return status(400, "BadRequest", f"fieldValidation must be Ignore, Warn or Strict, not {validation!r}")
        body = await self._json(request)
        if not isinstance(body, dict) or body.get("kind") != "Pod" or body.get("apiVersion") != "v1":
            return status(400, "BadRequest", "the body is not a v1 Pod")
        headers: dict[str, str] = {}
        try:
            kubernetes_validate.validate(body, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            unknown = exc.validator == "additionalProperties"
            if not unknown:
                return status(422, "Invalid", f"Pod is invalid: {exc.message}")
            if validation == "Strict":
                return status(400, "BadRequest", f"strict decoding error: {exc.message}")
            headers["Warning"] = f'299 - "{exc.message}"'
        metadata = body.setdefault("metadata", {})
        name = str(metadata.get("name", ""))
        if problems := pod_spec_problems(body.get("spec") or {}):
            return status(422, "Invalid", f'Pod "{name}" is invalid: ' + (
                problems[0] if len(problems) == 1 else f"[{', '.join(problems)}]"))
        if not name or len(name) > 253 or not SUBDOMAIN.match(name):
            return status(422, "Invalid", f'Pod "{name}" is invalid: metadata.name: Invalid value: a lowercase '
                          "RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'")
        if metadata.get("namespace", NAMESPACE) != NAMESPACE:
            return status(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                          "sent on the request")
        if problem := label_problem(metadata.get("labels") or {}):
            return status(422, "Invalid", f'Pod "{name}" is invalid: {problem}')
        if problem := restricted_problem(body.get("spec") or {}):
            return status(403, "Forbidden", f'pods "{name}" is forbidden: violates PodSecurity "restricted:latest":'
                          f" {problem}")
        admitted = self.admitted_images
        if admitted is not None and {c.get("image") for c in body["spec"]["containers"]} - admitted:
            return status(403, "Forbidden", f'pods "{name}" is forbidden: ValidatingAdmissionPolicy '
                          f"'{POLICY}' with binding '{POLICY}' denied request: a bot pod runs the stack's bot image "
                          f"with its own entrypoint and no init container (k8sBotImage: {', '.join(sorted(admitted))})")
        with self._pods_lock:
            if name in self.pods:
                return status(409, "AlreadyExists", f'pods "{name}" already exists')
            live = [p for p in self.pods.values() if p["status"]["phase"] not in ("Succeeded", "Failed")]
            if self.quota is not None and len(live) >= self.quota:
                return status(403, "Forbidden", f'pods "{name}" is forbidden: exceeded quota: vf-bots, requested: '
                              f"pods=1, used: pods={len(live)}, limited: pods={self.quota}")
            metadata.update(namespace=NAMESPACE, uid=str(uuid.uuid4()), creationTimestamp=_now())
            without_empty_maps(metadata)
            container = body["spec"]["containers"][0]
            missing = [ref["secretRef"]["name"] for ref in container.get("envFrom") or []
                       if "secretRef" in ref and ref["secretRef"]["name"] not in self.secrets]
            # The kubelet starts no container whose Secret is missing, and says so in its status.
            waiting = [{"name": container["name"], "state": {"waiting": {
                "reason": "CreateContainerConfigError", "message": f'secret "{name}" not found'}}}
                for name in missing[:1]]
            pod = {**body, "status": {"phase": "Pending", **({"containerStatuses": waiting} if waiting else {})}}
            self.pods[name] = pod
            self._bump(pod, "ADDED")
            self.created.append(name)
            self.envs[name] = container_env(container, self.secrets)
            self._project_token(name, body["spec"], metadata["uid"])
        if self.launcher is not None and not missing:
            self._start(name)
        return JSONResponse(self.pods[name], status_code=201, headers=headers)

    def _project_token(self, name: str, spec: dict[str, Any], uid: str) -> None:
        """A bound ServiceAccount token per projected `serviceAccountToken` source (one here)."""
        for volume in spec.get("volumes") or []:
            for source in (volume.get("projected") or {}).get("sources") or []:
                if projected := source.get("serviceAccountToken"):
                    audiences = (projected.get("audience") or "https://kubernetes.default.svc",)
                    account = spec.get("serviceAccountName") or "default"
                    now = int(self.clock())
                    expires = now + projected.get("expirationSeconds", 3600)
                    token = bound_token(name, uid, audiences, account, now, expires)
                    self.pod_tokens[token] = (name, uid, audiences, account, expires)

    async def token_review(self, request: Request) -> Response:
        """TokenReview: a pod's bound token is authenticated while its pod (that uid) exists, for the
        audiences it was issued for that the review asks (none asked: the API server's own); the
        dispatcher's token for the API server's own audiences."""
        body = await self._json(request)
        if not isinstance(body, dict) or body.get("kind") != "TokenReview" or \
                body.get("apiVersion") != "authentication.k8s.io/v1":
            return status(400, "BadRequest", "the body is not an authentication.k8s.io/v1 TokenReview")
        spec = body.get("spec") or {}
        asked = tuple(spec.get("audiences") or self.api_audiences)
        known = self.pod_tokens.get(str(spec.get("token", "")))
        answer: dict[str, Any] = {"authenticated": False, "error": "invalid bearer token"}
        with self._pods_lock:
            if spec.get("token") == self.token and (common := [a for a in asked if a in self.api_audiences]):
                answer = {"authenticated": True, "audiences": common, "user": {
                    "username": "system:serviceaccount:voicefleet:voicefleet-dispatcher", "uid": "dispatcher",
                    "groups": ["system:serviceaccounts", "system:authenticated"]}}
            elif known is not None:
                name, uid, audiences, account, expires = known
                pod = self.pods.get(name)
                common = [a for a in asked if a in audiences]
                if self.clock() >= expires:  # claims.go `Validate`: jwt.ErrExpired
                    answer["error"] = "service account token has expired"
                elif pod is None or pod["metadata"]["uid"] != uid:
                    answer["error"] = "pod does not exist or its uid differs: the token is no longer valid"
                elif not common:
                    answer["error"] = "token audiences is invalid for the target audiences"
                else:
                    self.reviewed_pods.add(name)
                    answer = {"authenticated": True, "audiences": common, "user": {
                        "username": f"system:serviceaccount:{NAMESPACE}:{account}", "uid": str(uuid.uuid4()),
                        "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}",
                                   "system:authenticated"],
                        "extra": {"authentication.kubernetes.io/pod-name": [name],
                                  "authentication.kubernetes.io/pod-uid": [uid]}}}
        return JSONResponse({**body, "status": answer}, status_code=201)

    async def get(self, request: Request) -> Response:
        name = request.path_params["name"]
        with self._pods_lock:
            if name not in self.pods:
                return status(404, "NotFound", f'pods "{name}" not found')
            return JSONResponse(self.pods[name])

    async def list_pods(self, request: Request) -> Response:
        return self.listed(request, self.pods, "PodList", "v1")

    def listed(self, request: Request, objects: dict[str, dict[str, Any]], kind: str, api_version: str) -> Response:
        """A LIST of `objects`: `labelSelector`, `fieldSelector`, `limit` and `continue`, as the API server
        pages them; with `watch=1`, a watch of the kind's history."""
        history = self.histories.get(kind.removesuffix("List"))
        selectable = history.fields if history is not None else METADATA_FIELDS
        try:
            requirements = parse_selector(request.query_params.get("labelSelector", ""))
            fields = parse_fields(request.query_params.get("fieldSelector", ""), selectable)
            limit = int(request.query_params.get("limit", "0"))
            start = int(json.loads(base64.b64decode(request.query_params["continue"]))["start"]) \
                if "continue" in request.query_params else 0
        except (ValueError, KeyError, TypeError) as exc:
            return status(400, "BadRequest", f"unable to parse the request: {exc}")

        def match(pod: dict[str, Any]) -> bool:
            return matches(requirements, pod["metadata"].get("labels") or {}) and fields_match(fields, selectable, pod)

        if request.query_params.get("watch") in ("1", "true"):
            if history is None:
                return status(400, "BadRequest", f"this fake does not watch {kind.removesuffix('List')}s")
            return history.watch(request, match, lambda: [p for _, p in sorted(objects.items())])
        with self._pods_lock:
            items = [copy.deepcopy(p) for _, p in sorted(objects.items()) if match(p)]
            version = str(self._latest)
        page, metadata = items[start:start + limit] if limit else items[start:], {"resourceVersion": version}
        if limit and start + limit < len(items):
            metadata["continue"] = base64.b64encode(json.dumps({"start": start + limit}).encode()).decode()
        return JSONResponse({"kind": kind, "apiVersion": api_version, "metadata": metadata, "items": page})

    async def patch(self, request: Request) -> Response:
        name = request.path_params["name"]
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind not in PATCH_TYPES:
            return status(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                          f"accepted media types include: {', '.join(PATCH_TYPES)}")
        body = await self._json(request)
        with self._pods_lock:
            if name not in self.pods:
                return status(404, "NotFound", f'pods "{name}" not found')
            before = self.pods[name]
            try:
                if kind == PATCH_TYPES[0]:
                    if not isinstance(body, list):
                        return status(400, "BadRequest", "a JSON patch is a list of operations")
                    after = jsonpatch.apply_patch(before, body)
                else:
                    if not isinstance(body, dict):
                        return status(400, "BadRequest", "a merge patch is an object")
                    after = _merge(before, body)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                return status(422, "Invalid", f"the server rejected our request due to an error in our request: {exc}")
            # A resourceVersion the patch sets is the update's precondition (409 when stale); one it removes is none.
            current = before["metadata"]["resourceVersion"]
            if after.setdefault("metadata", {}).setdefault("resourceVersion", current) != current:
                return status(409, "Conflict", f'Operation cannot be fulfilled on pods "{name}": the object has been '
                              "modified; please apply your changes to the latest version and try again")
            unchanged = ("spec", "status", "kind", "apiVersion")
            fixed = ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp")
            if any(after.get(k) != before.get(k) for k in unchanged) or any(
                    after["metadata"].get(k) != before["metadata"].get(k) for k in fixed):
                return status(422, "Invalid", f'Pod "{name}" is invalid: spec: Forbidden: pod updates may not change '
                              "fields other than labels and annotations here")
            if problem := label_problem(after["metadata"].get("labels") or {}):
                return status(422, "Invalid", f'Pod "{name}" is invalid: {problem}')
            without_empty_maps(after["metadata"])
            self._bump(after)
            self.pods[name] = after
            return JSONResponse(after)

    async def delete_options(self, request: Request) -> dict[str, Any] | Response:
        """The DELETE's DeleteOptions (tests/fakes/k8s_delete.py), or its refusal."""
        body = await request.body()
        try:
            options = read_options(request.query_params, json.loads(body) if body else None)
        except ValueError:
            return status(400, "BadRequest", "the body of a DELETE is not JSON")
        return status(*options) if isinstance(options, tuple) else options

    async def delete(self, request: Request) -> Response:
        name = request.path_params["name"]
        options = await self.delete_options(request)
        if isinstance(options, Response):
            return options
        with self._pods_lock:
            if name not in self.pods:
                return status(404, "NotFound", f'pods "{name}" not found')
            if refused := precondition_refusal(options, self.pods[name], f'pods "{name}"'):
                return status(*refused)
            return JSONResponse(self.remove_pod(name, int(options.get("gracePeriodSeconds", 30))))

    def remove_pod(self, name: str, grace: int) -> dict[str, Any]:
        """The kubelet's deletion: SIGTERM, SIGKILL past `grace`; gone once its process has exited."""
        with self._pods_lock:
            pod = self.pods[name]
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                return self._remove(name)  # nothing running: gone at once
            if not pod["metadata"].get("deletionTimestamp"):
                pod["metadata"].update(deletionTimestamp=_now(), deletionGracePeriodSeconds=grace)
                self._bump(pod)
                process.send_signal(signal.SIGTERM)
                timer = threading.Timer(float(grace), _kill, (process,))
                timer.daemon = True
                timer.start()
            return pod


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Past the grace period: SIGKILL, as the kubelet sends it."""
    if process.poll() is None:
        process.kill()


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result
