"""The fake Kubernetes API server with kubernetes-sigs/agent-sandbox's extensions installed: exactly the
paths `K8S_MODE=agent-sandbox` calls, as strict as the real ones, and the controller behind them.

- Discovery: `GET /apis/extensions.agents.x-k8s.io` and `/apis/agents.x-k8s.io` answer an `APIGroup`
  with the versions in `served` (a group left out is 404, as on a cluster without the CRDs). A path under
  a version the group does not serve is 404 NotFound.
- SandboxClaims (`/apis/extensions.agents.x-k8s.io/<version>/namespaces/<ns>/sandboxclaims[/<name>]`:
  POST, GET, LIST with `labelSelector`/`fieldSelector` (`metadata.name`, `metadata.namespace`: the CRD
  declares no `selectableFields`)/`limit`/`continue`, DELETE with DeleteOptions validated as the pods'
  (tests/fakes/k8s_delete.py: Foreground, Background (the default) or Orphan; 200)), and their WATCH
  as the pods' (tests/fakes/k8s_watch.py: `claim_watches`, every change an event, 410, timeouts). A body is
  validated with `jsonschema` against the CRD's own `openAPIV3Schema` (agent_sandbox_crds/); as for a
  structural schema, a field the schema does not list is unknown: 400 `strict decoding error` under
  `?fieldValidation=Strict`, else dropped with a `Warning` header; `metadata`, which the CRD leaves open, is
  decoded as ObjectMeta alike (tests/fakes/k8s_schema.py). Any other schema error is 422 Invalid;
  the schema's defaults are applied (`shutdownPolicy: Retain`). `claim_quota` set: a ResourceQuota's
  `count/sandboxclaims.extensions.agents.x-k8s.io`, 403 Forbidden `exceeded quota` past it.
- SandboxTemplates: GET, the one a pool names (`add_pool` and `set_template` write its pod).
- SandboxWarmPools: GET, LIST (`labelSelector`, as claims'), and the `scale` subresource (GET, PATCH
  with a merge patch: an `autoscaling/v1`
  Scale, `spec.replicas` ≥ 0 or 422; a strategic merge patch is 415, as on any custom resource).
  `add_pool` registers a pool and its template's pod spec, each validated (the pool against its CRD,
  the pod against the v1 Pod schema and `ValidatePodSpec`'s checks).
- The controller (a thread, reconciling after every write and on a short resync, as a controller's
  informers do): each pool keeps `spec.replicas` unclaimed Sandboxes, each with a pod named after it
  (created as the pods fake creates one: its projected token, a real bot process when `launcher` is set).
  A claim adopts a warm Sandbox whose pod runs in the controller's three writes, each a pass of its own
  so a read between them sees the state before it: the claim's annotation `agents.x-k8s.io/sandbox-name`,
  the Sandbox's owner moved from the pool to the claim (its pool label dropped, its `claim-uid` set, the
  pool refilled), the claim's status; then the pod's labels `agents.x-k8s.io/launch-type=warm`,
  `agents.x-k8s.io/claim-uid` and the claim's `additionalPodMetadata`. Else it creates one cold named
  after the claim; its status is `sandbox.name`, `podIPs` and `Ready` (reason
  `DependenciesReady` once the pod runs; `WarmPoolNotFound`; `InvalidMetadata` for an
  `additionalPodMetadata` the controller refuses, with its message: a label key without a domain or
  whose domain is not in `allowed_label_domains` (the controller's `/etc/sandbox-config/allowed-label-domains`,
  default `sandbox.users.io` and its subdomains), an annotation of a Kubernetes system domain other than
  `cluster-autoscaler.kubernetes.io/safe-to-evict`; sandboxclaim_controller.go `validateAdditionalPodMetadata`).
  A pool's template's pod labels (`add_pool`'s `pod_labels`) are on each of its pods. A terminal pod sets
  `Finished` (`PodSucceeded` "Pod completed successfully" / `PodFailed` "Pod failed": never the pod's
  own reason, sandbox_controller.go `computeFinishedCondition`); the claim expires at `Finished +
  ttlSecondsAfterFinished` or `shutdownTime`, and its `shutdownPolicy` applies: Delete (claim and pod
  gone), DeleteForeground (the claim stays with a `deletionTimestamp` until its pod is gone), Retain (the
  pod deleted, the claim kept `Ready=False ClaimExpired`). A claim deleted in the foreground likewise waits for its pod.
- Third parties: `POST …/sandboxes` stores a Sandbox with whatever ownerReferences and labels it is sent
  (the API server checks no owner) and the controller makes its pod from its `spec.podTemplate`; a pod
  POSTed likewise keeps its ownerReferences. The garbage collector (each pass, unless `collecting` is
  off: the real one runs in the background, later) deletes a Sandbox whose controller's uid is no pool's
  or claim's, and a pod whose controlling Sandbox's uid is gone.
  `reconciling` off holds the controller's passes (a test's window: a claim read as a test set it).
- The pool's `spec.updateStrategy` (`add_pool`'s `update_strategy`; None leaves it unset, which the
  controller reads as `OnReplenish`): after `set_template`, `Recreate` replaces the warm Sandboxes of the
  old template and no claim adopts one; `OnReplenish` keeps them for claims.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.k8s import (
    KUBE_VERSION,
    NAMESPACE,
    SUBDOMAIN,
    FakeKubernetes,
    label_problem,
    status,
    without_empty_maps,
)
from tests.fakes.k8s_delete import precondition_refusal
from tests.fakes.k8s_pod_spec import pod_spec_problems
from tests.fakes.k8s_schema import schema_problems as type_problems
from tests.fakes.k8s_schema import type_fields
from tests.fakes.k8s_watch import METADATA_FIELDS, WatchHistory

GROUP, CORE_GROUP = "extensions.agents.x-k8s.io", "agents.x-k8s.io"
CRDS = Path(__file__).parent / "agent_sandbox_crds"
POOL = "voicefleet-bot"  # the pool the dispatcher is configured with (K8S_WARM_POOL)
RESYNC_SECONDS = 0.05
LAUNCH_TYPE, CLAIM_UID = "agents.x-k8s.io/launch-type", "agents.x-k8s.io/claim-uid"
SANDBOX_NAME = "agents.x-k8s.io/sandbox-name"
WARM_POOL_LABEL = "agents.x-k8s.io/warm-pool-sandbox"  # api/v1beta1/sandbox_types.go, SandboxWarmPoolLabel
WARM_GRACE_SECONDS = 2.0  # sandboxclaim_controller.go, warmCandidateGracePeriod
DEFAULT_LABEL_DOMAINS = ("sandbox.users.io",)  # the controller's fallback with no allowlist file
RESTRICTED_DOMAINS = ("kubernetes.io", "k8s.io", "agents.x-k8s.io")
EXEMPTED_KEYS = ("cluster-autoscaler.kubernetes.io/safe-to-evict",)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def crd_schemas(plural: str) -> dict[str, dict[str, Any]]:
    """The CRD's `openAPIV3Schema` per served version."""
    crd = yaml.safe_load((CRDS / f"{GROUP}_{plural}.yaml").read_text())
    return {v["name"]: v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v.get("served")}


def closed(schema: Any) -> Any:
    """The schema with every object that lists its properties closed to others: a structural schema's
    unknown fields, which the API server prunes (or refuses under fieldValidation=Strict)."""
    if not isinstance(schema, dict):
        return schema
    out = {k: (closed(v) if k in ("items", "additionalProperties") else v) for k, v in schema.items()}
    if "properties" in schema:
        out["properties"] = {k: closed(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    for key in ("anyOf", "allOf", "oneOf"):
        if key in schema:
            out[key] = [closed(s) for s in schema[key]]
    return out


def pruned(value: Any, schema: dict[str, Any]) -> Any:
    """`value` without the fields `schema` does not list (the API server's pruning), defaults applied."""
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        out = {k: pruned(v, props[k]) for k, v in value.items() if k in props}
        for key, sub in props.items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
        return out
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        return {k: pruned(v, schema["additionalProperties"]) for k, v in value.items()}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [pruned(v, schema["items"]) for v in value]
    return value


def schema_problems(body: dict[str, Any], schema: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(unknown fields, other errors) of `body` against the CRD's schema."""
    unknown, invalid = [], []
    for error in jsonschema.Draft7Validator(closed(schema), format_checker=jsonschema.FormatChecker()
                                            ).iter_errors(body):
        where = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "additionalProperties":
            unknown.append(f'unknown field "{where + "." if where else ""}{error.message.split(chr(39))[1]}"')
        else:
            invalid.append(f"{where or '<root>'}: Invalid value: {error.message[:200]}")
    return unknown, invalid


def name_hash(name: str) -> str:
    """The controller's `NameHash` (controllers/sandbox_controller.go): FNV-1a 32, eight hex digits."""
    h = 0x811C9DC5
    for byte in name.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{h:08x}"


def _within(domain: str, domains: tuple[str, ...]) -> bool:
    return any(domain == d or domain.endswith("." + d) for d in domains)


def pod_metadata_problem(extra: dict[str, Any], allowed: tuple[str, ...]) -> str | None:
    """The controller's refusal of a claim's `additionalPodMetadata` (`validateAdditionalPodMetadata`), or None."""
    q = json.dumps  # Go's %q
    for kind, entries in (("label", extra.get("labels") or {}), ("annotation", extra.get("annotations") or {})):
        for key, value in entries.items():
            if problem := label_problem({key: "x"}):
                why = f"invalid {kind} key: {q(key)}: {problem}"
            elif kind == "label" and key.lower() == "app" and value.lower() == "sandbox-router":
                why = f"restricted system label value: {q(key)}={q(value)} is not allowed in AdditionalPodMetadata"
            elif kind == "label" and "/" not in key:
                why = f"label {q(key)} must have a domain prefix (e.g. 'sandbox.users.io/my-label') to prevent " \
                      "opting into unintended policy domains"
            elif kind == "label" and not _within(key.split("/", 1)[0].lower(), allowed or DEFAULT_LABEL_DOMAINS):
                why = f"label domain {q(key.split('/', 1)[0].lower())} is not in the allowlist"
            elif kind == "annotation" and "/" in key and _within(key.split("/", 1)[0].lower(), RESTRICTED_DOMAINS) \
                    and key not in EXEMPTED_KEYS:
                why = f"restricted system domain: {q(key)} is not allowed in AdditionalPodMetadata"
            elif kind == "label" and (why := label_problem({key: value}) or ""):
                why = f"invalid label value: {q(value)} does not match allowed pattern: {why}"
            else:
                continue
            return f"invalid additionalPodMetadata: failed to validate {kind} {q(key)}: {why}"
    return None


class FakeAgentSandbox(FakeKubernetes):
    def __init__(self) -> None:
        super().__init__()
        self.served: dict[str, tuple[str, ...]] = {GROUP: ("v1beta1", "v1alpha1"), CORE_GROUP: ("v1beta1", "v1alpha1")}
        self.schemas = {plural: crd_schemas(plural) for plural in ("sandboxclaims", "sandboxwarmpools")}
        self.claims: dict[str, dict[str, Any]] = {}
        self.claim_watches = self.histories["SandboxClaim"] = WatchHistory(self._pods_lock, METADATA_FIELDS,
                                                                           lambda: self._latest)
        self.warm_pools: dict[str, dict[str, Any]] = {}
        self.templates: dict[str, dict[str, Any]] = {}  # pool → its template's pod spec
        self.template_labels: dict[str, dict[str, str]] = {}  # pool → its template's pod labels
        self.allowed_label_domains: tuple[str, ...] = ()  # the controller's allowlist file; empty: its default
        # name → {"pool", "claim" ("" while warm; set once a claim is assigned it), "uid", "owners": its
        # ownerReferences as stored, "labels" (a third party's own), "launch", "template": its pod spec's hash}
        self.sandboxes: dict[str, dict[str, Any]] = {}
        self.collecting = True  # False: the garbage collector has not yet acted on an orphan (a test's window)
        self.reconciling = True  # False: the controller's next pass has not come yet (a test's window)
        self.claim_quota: int | None = None
        self.claims_created: list[str] = []  # every claim name ever created
        self.expiring = True  # False: the controller has not yet acted on an expired claim (a test's window)
        self._names = itertools.count(1)
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._controller = threading.Thread(target=self._run, daemon=True, name="agent-sandbox-controller")
        self._controller.start()

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "K8S_MODE": "agent-sandbox", "K8S_WARM_POOL": POOL}

    def routes(self) -> list[Route]:
        base = "/apis/{group}/{version}/namespaces/{namespace}"
        return [*super().routes(),
                Route("/apis/{group}", self.discovery, methods=["GET"]),
                Route(base + "/sandboxclaims", self.create_claim, methods=["POST"]),
                Route(base + "/sandboxclaims", self.list_claims, methods=["GET"]),
                Route(base + "/sandboxclaims/{name}", self.get_claim, methods=["GET"]),
                Route(base + "/sandboxclaims/{name}", self.delete_claim, methods=["DELETE"]),
                Route(base + "/sandboxwarmpools", self.list_pools, methods=["GET"]),
                Route(base + "/sandboxwarmpools/{name}", self.get_pool, methods=["GET"]),
                Route(base + "/sandboxtemplates/{name}", self.get_template, methods=["GET"]),
                Route(base + "/sandboxes/{name}", self.get_sandbox, methods=["GET"]),
                Route(base + "/sandboxes", self.create_sandbox, methods=["POST"]),
                Route(base + "/sandboxwarmpools/{name}/scale", self.get_scale, methods=["GET"]),
                Route(base + "/sandboxwarmpools/{name}/scale", self.patch_scale, methods=["PATCH"])]

    def close(self) -> None:
        self._stopped.set()
        self._wake.set()
        self._controller.join(timeout=10)
        super().close()

    # --- set-up, as a cluster's operator (or a stack) does it ---

    def add_pool(self, name: str, replicas: int, pod_spec: dict[str, Any],
                 pod_labels: dict[str, str] | None = None, update_strategy: str | None = "Recreate",
                 labels: dict[str, str] | None = None) -> None:
        """A SandboxWarmPool and its SandboxTemplate (whose pod is `pod_labels` and `pod_spec`), both valid;
        `labels`: the pool's own (a release's pool carries `voicefleet.io/release`)."""
        assert not label_problem(labels or {}), labels
        assert not label_problem(pod_labels or {}), pod_labels
        valid_template(pod_spec)
        pool = {"apiVersion": f"{GROUP}/v1beta1", "kind": "SandboxWarmPool",
                "metadata": {"name": name, "namespace": NAMESPACE, "uid": str(uuid.uuid4()),
                             "creationTimestamp": _now(), "generation": 1, **({"labels": labels} if labels else {})},
                "spec": {"replicas": replicas, "sandboxTemplateRef": {"name": name},
                         **({"updateStrategy": {"type": update_strategy}} if update_strategy else {})}}
        unknown, invalid = schema_problems(pool, self.schemas["sandboxwarmpools"]["v1beta1"])
        assert not unknown and not invalid, (unknown, invalid)
        with self._pods_lock:
            self._bump(pool)
            self.warm_pools[name] = pool
            self.templates[name] = copy.deepcopy(pod_spec)
            self.template_labels[name] = dict(pod_labels or {})
        self._wake.set()

    def warm(self, pool: str) -> list[str]:
        """The pool's unclaimed Sandboxes."""
        with self._pods_lock:
            return [n for n, s in self.sandboxes.items() if s["pool"] == pool and not s["claim"]]

    def set_template(self, pool: str, pod_spec: dict[str, Any]) -> None:
        """The pool's SandboxTemplate's pod changed (a new image): `Recreate` replaces its warm Sandboxes at
        once; `OnReplenish` (the controller's default) leaves them until claimed."""
        valid_template(pod_spec)
        with self._pods_lock:
            self.templates[pool] = copy.deepcopy(pod_spec)
        self._wake.set()

    def _stale(self, sandbox: str) -> bool:
        record = self.sandboxes[sandbox]
        pool = self.warm_pools.get(record["pool"])
        return pool is not None and record["template"] != _spec_hash(self.templates[record["pool"]]) and \
            (pool["spec"].get("updateStrategy") or {}).get("type") == "Recreate"

    # --- the API ---

    def _served(self, request: Request, group: str = GROUP) -> Response | None:
        version = request.path_params.get("version", "")
        if request.path_params.get("group") != group or version not in self.served.get(group, ()):
            return status(404, "NotFound", "the server could not find the requested resource")
        return None

    async def discovery(self, request: Request) -> Response:
        group = request.path_params["group"]
        versions = self.served.get(group)
        if not versions:
            return status(404, "NotFound", "the server could not find the requested resource")
        listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return JSONResponse({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": listed,
                             "preferredVersion": listed[0]})

    async def create_claim(self, request: Request) -> Response:
        if (missing := self._served(request)) is not None:
            return missing
        version = request.path_params["version"]
        validation = request.query_params.get("fieldValidation", "Warn")
        if validation not in ("Ignore", "Warn", "Strict"):
            return status(400, "BadRequest", f"fieldValidation must be Ignore, Warn or Strict, not {validation!r}")
        body = await self._json(request)
        if not isinstance(body, dict) or body.get("kind") != "SandboxClaim" or \
                body.get("apiVersion") != f"{GROUP}/{version}":
            return status(400, "BadRequest", f"the body is not a {GROUP}/{version} SandboxClaim")
        schema = self.schemas["sandboxclaims"][version]
        unknown, invalid = schema_problems(body, schema)
        # The CRD's schema leaves `metadata` open: the API server decodes it as ObjectMeta, strictly.
        raw_metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        meta_unknown, meta_invalid = type_problems("objectmeta-meta-v1", raw_metadata)
        unknown += [u.replace('unknown field "', 'unknown field "metadata.') for u in meta_unknown]
        invalid += [f"metadata.{i}" for i in meta_invalid]
        headers = {}
        if unknown and validation == "Strict":
            return status(400, "BadRequest", f"strict decoding error: {', '.join(unknown)}")
        if unknown and validation == "Warn":
            headers["Warning"] = f'299 - "{unknown[0]}"'
        known = type_fields("objectmeta-meta-v1")
        metadata: dict[str, Any] = {k: v for k, v in raw_metadata.items() if k in known}  # unknown ones pruned
        name = str(metadata.get("name", ""))
        if invalid:
            return status(422, "Invalid", f'SandboxClaim.{GROUP} "{name}" is invalid: {"; ".join(invalid)}')
        if not name or len(name) > 253 or not SUBDOMAIN.match(name):
            return status(422, "Invalid", f'SandboxClaim.{GROUP} "{name}" is invalid: metadata.name: Invalid value')
        if metadata.get("namespace", NAMESPACE) != NAMESPACE:
            return status(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                          "sent on the request")
        if problem := label_problem(metadata.get("labels") or {}):
            return status(422, "Invalid", f'SandboxClaim.{GROUP} "{name}" is invalid: {problem}')
        claim = pruned(body, schema)
        claim["metadata"] = {**metadata, "namespace": NAMESPACE, "uid": str(uuid.uuid4()),
                             "creationTimestamp": _now(), "generation": 1}
        claim["status"] = {}
        with self._pods_lock:
            if name in self.claims:
                return status(409, "AlreadyExists", f'sandboxclaims.{GROUP} "{name}" already exists')
            if self.claim_quota is not None and len(self.claims) >= self.claim_quota:
                return status(403, "Forbidden", f'sandboxclaims.{GROUP} "{name}" is forbidden: exceeded quota: '
                              f"vf-claims, requested: count/sandboxclaims.{GROUP}=1, used: count/sandboxclaims.{GROUP}="
                              f"{len(self.claims)}, limited: count/sandboxclaims.{GROUP}={self.claim_quota}")
            self._bump(claim, "ADDED")
            self.claims[name] = claim
            self.claims_created.append(name)
            answer = copy.deepcopy(claim)
        self._wake.set()
        return JSONResponse(answer, status_code=201, headers=headers)

    async def get_sandbox(self, request: Request) -> Response:
        """A Sandbox (`agents.x-k8s.io`): its labels and its controller's ownerReference, the pool's
        while warm, its claim's once adopted (sandboxclaim_controller.go, `completeAdoption`)."""
        if (missing := self._served(request, CORE_GROUP)) is not None:
            return missing
        name = request.path_params["name"]
        with self._pods_lock:
            if name not in self.sandboxes:
                return status(404, "NotFound", f'sandboxes.{CORE_GROUP} "{name}" not found')
            record = self.sandboxes[name]
            return JSONResponse({"apiVersion": f"{CORE_GROUP}/{request.path_params['version']}", "kind": "Sandbox",
                                 "metadata": {"name": name, "namespace": NAMESPACE, "uid": record["uid"],
                                              "labels": self.sandbox_labels(name),
                                              "ownerReferences": copy.deepcopy(record["owners"])}})

    def sandbox_labels(self, name: str) -> dict[str, str]:
        """The controllers' labels: the pool's hash while the pool holds it (`buildSandboxCR`), the claim's
        uid once adopted (`completeAdoption` drops the pool's); a third party's Sandbox carries its own."""
        record = self.sandboxes[name]
        if record["labels"] is not None:
            return dict(record["labels"])
        labels = {LAUNCH_TYPE: record["launch"]}
        owner = _controller(record["owners"])
        if owner.get("kind") == "SandboxWarmPool":
            labels[WARM_POOL_LABEL] = name_hash(record["pool"])
        elif owner.get("kind") == "SandboxClaim":
            labels[CLAIM_UID] = str(owner.get("uid"))
        return labels

    async def create_sandbox(self, request: Request) -> Response:
        """A Sandbox written by anyone the namespace's RBAC lets create one: the API server stores its
        ownerReferences as sent (it checks no owner), and the Sandbox controller makes its pod from its
        `spec.podTemplate`, named after it and controlled by it (sandbox_controller.go, `reconcilePod`)."""
        if (missing := self._served(request, CORE_GROUP)) is not None:
            return missing
        body = await self._json(request)
        version = request.path_params["version"]
        if not isinstance(body, dict) or body.get("kind") != "Sandbox" or body.get("apiVersion") != \
                f"{CORE_GROUP}/{version}":
            return status(400, "BadRequest", f"the body is not a {CORE_GROUP}/{version} Sandbox")
        metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        name = str(metadata.get("name", ""))
        if not name or len(name) > 63 or not SUBDOMAIN.match(name):
            return status(422, "Invalid", f'Sandbox.{CORE_GROUP} "{name}" is invalid: metadata.name: Invalid value')
        template = ((body.get("spec") or {}).get("podTemplate") or {})
        try:
            kubernetes_validate.validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                                          "spec": template.get("spec")}, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            return status(422, "Invalid", f'Sandbox.{CORE_GROUP} "{name}" is invalid: spec.podTemplate: {exc.message}')
        if problems := pod_spec_problems(template.get("spec") or {}):
            return status(422, "Invalid", f'Sandbox.{CORE_GROUP} "{name}" is invalid: spec.podTemplate.'
                          f'{"; spec.podTemplate.".join(problems)}')
        labels = dict(metadata.get("labels") or {})
        if problem := label_problem(labels):
            return status(422, "Invalid", f'Sandbox.{CORE_GROUP} "{name}" is invalid: {problem}')
        with self._pods_lock:
            if name in self.sandboxes:
                return status(409, "AlreadyExists", f'sandboxes.{CORE_GROUP} "{name}" already exists')
            self.sandboxes[name] = {"pool": "", "claim": "", "uid": str(uuid.uuid4()), "labels": labels,
                                    "owners": copy.deepcopy(list(metadata.get("ownerReferences") or [])),
                                    "launch": "", "template": _spec_hash(template["spec"])}
            if name not in self.pods:  # a pod of that name already there is the controller's to fail on
                self._add_pod(name, template["spec"], dict((template.get("metadata") or {}).get("labels") or {}),
                              {})
            answer = {"apiVersion": body["apiVersion"], "kind": "Sandbox",
                      "metadata": {"name": name, "namespace": NAMESPACE, "uid": self.sandboxes[name]["uid"],
                                   "labels": labels, "ownerReferences": self.sandboxes[name]["owners"]}}
        return JSONResponse(answer, status_code=201)

    async def get_claim(self, request: Request) -> Response:
        if (missing := self._served(request)) is not None:
            return missing
        name = request.path_params["name"]
        with self._pods_lock:
            if name not in self.claims:
                return status(404, "NotFound", f'sandboxclaims.{GROUP} "{name}" not found')
            return JSONResponse(copy.deepcopy(self.claims[name]))

    async def list_claims(self, request: Request) -> Response:
        if (missing := self._served(request)) is not None:
            return missing
        return self.listed(request, self.claims, "SandboxClaimList", f"{GROUP}/{request.path_params['version']}")

    async def delete_claim(self, request: Request) -> Response:
        if (missing := self._served(request)) is not None:
            return missing
        name = request.path_params["name"]
        options = await self.delete_options(request)
        if isinstance(options, Response):
            return options
        # A custom resource's default is Background; `orphanDependents: true` is Orphan.
        policy = options.get("propagationPolicy") or ("Orphan" if options.get("orphanDependents") else "Background")
        with self._pods_lock:
            if name not in self.claims:
                return status(404, "NotFound", f'sandboxclaims.{GROUP} "{name}" not found')
            claim = self.claims[name]
            if refused := precondition_refusal(options, claim, f'sandboxclaims.{GROUP} "{name}"'):
                return status(*refused)
            if policy == "Foreground":
                claim["metadata"].setdefault("deletionTimestamp", _now())
                claim["metadata"]["finalizers"] = ["foregroundDeletion"]
                self._bump(claim)
                self._release(claim)
            elif policy == "Orphan":  # its Sandbox stays, its ownerReference to the claim dropped
                self._drop(name)
                if (sandbox := self.sandboxes.get(_assigned(claim) or "")) is not None:
                    sandbox["owners"] = [o for o in sandbox["owners"] if o.get("uid") != claim["metadata"]["uid"]]
            else:
                self._drop(name)
                self._release(claim)
            answer = copy.deepcopy(claim)
        self._wake.set()
        return JSONResponse(answer)

    def _pool_or_missing(self, request: Request) -> dict[str, Any] | Response:
        if (missing := self._served(request)) is not None:
            return missing
        name = request.path_params["name"]
        if name not in self.warm_pools:
            return status(404, "NotFound", f'sandboxwarmpools.{GROUP} "{name}" not found')
        return self.warm_pools[name]

    async def list_pools(self, request: Request) -> Response:
        if (missing := self._served(request)) is not None:
            return missing
        return self.listed(request, self.warm_pools, "SandboxWarmPoolList", f"{GROUP}/{request.path_params['version']}")

    async def get_pool(self, request: Request) -> Response:
        with self._pods_lock:
            pool = self._pool_or_missing(request)
            return pool if isinstance(pool, Response) else JSONResponse(copy.deepcopy(pool))

    async def get_template(self, request: Request) -> Response:
        """The SandboxTemplate a pool names (`add_pool` names it after the pool), as its CRD shapes it."""
        if (missing := self._served(request)) is not None:
            return missing
        name = request.path_params["name"]
        with self._pods_lock:
            pool = next((p for p, body in self.warm_pools.items()
                         if body["spec"]["sandboxTemplateRef"]["name"] == name), None)
            if pool is None:
                return status(404, "NotFound", f'sandboxtemplates.{GROUP} "{name}" not found')
            return JSONResponse({
                "apiVersion": f"{GROUP}/{request.path_params['version']}", "kind": "SandboxTemplate",
                "metadata": {"name": name, "namespace": NAMESPACE, "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, name))},
                "spec": {"podTemplate": {"metadata": {"labels": dict(self.template_labels[pool])},
                                         "spec": copy.deepcopy(self.templates[pool])}}})

    def _scale(self, pool: dict[str, Any]) -> dict[str, Any]:
        metadata = pool["metadata"]
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: metadata[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                      "creationTimestamp")},
                "spec": {"replicas": pool["spec"].get("replicas", 1)},
                "status": {"replicas": len(self.warm(metadata["name"])),
                           "selector": f"agents.x-k8s.io/pool={metadata['name']}"}}

    async def get_scale(self, request: Request) -> Response:
        with self._pods_lock:
            pool = self._pool_or_missing(request)
            return pool if isinstance(pool, Response) else JSONResponse(self._scale(pool))

    async def patch_scale(self, request: Request) -> Response:
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind != "application/merge-patch+json":  # no strategic merge patch on a custom resource's subresource
            return status(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted "
                          "media types include: application/json-patch+json, application/merge-patch+json, "
                          "application/apply-patch+yaml (this fake serves the merge patch)")
        patch = await self._json(request)
        with self._pods_lock:
            pool = self._pool_or_missing(request)
            if isinstance(pool, Response):
                return pool
            if not isinstance(patch, dict) or set(patch) - {"spec", "metadata"} or \
                    set(patch.get("spec") or {}) - {"replicas"}:
                return status(400, "BadRequest", f"strict decoding error: a Scale patch sets spec.replicas: {patch}")
            replicas = (patch.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                return status(422, "Invalid", f'Scale.autoscaling "{pool["metadata"]["name"]}" is invalid: '
                              f"spec.replicas: Invalid value: {replicas!r}: must be greater than or equal to 0")
            pool["spec"]["replicas"] = replicas
            pool["metadata"]["generation"] += 1
            self._bump(pool)
            self._reconcile()
            return JSONResponse(self._scale(pool))

    # --- the controller ---

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(RESYNC_SECONDS)  # a controller's informer resync: it is not a test's wait
            self._wake.clear()
            with self._pods_lock:
                if self.reconciling:
                    self._reconcile()

    def _reconcile(self) -> None:
        if self.collecting:
            self._collect_garbage()
        for name, pool in self.warm_pools.items():
            self._refill(name, pool)
        now = self.clock()  # the cluster's clock: a test moves it past a claim's expiry
        for name, claim in list(self.claims.items()):
            if claim["metadata"].get("deletionTimestamp"):  # the controller skips it; the GC waits for the pod
                if not self._claim_pod(claim):
                    self._drop(name)
                continue
            self._bind(claim)
            self._observe(claim, now)

    def _collect_garbage(self) -> None:
        """The garbage collector: a Sandbox whose controller owner's uid no longer exists is deleted, and a
        pod whose controlling Sandbox's uid no longer exists (the real one does it in the background)."""
        owners = {o["metadata"]["uid"] for o in [*self.warm_pools.values(), *self.claims.values()]}
        for name, record in list(self.sandboxes.items()):
            if (uid := _controller(record["owners"]).get("uid")) is not None and uid not in owners:
                self._delete_sandbox(name)
        sandboxes = {r["uid"] for r in self.sandboxes.values()}
        for name, pod in list(self.pods.items()):
            owner = _controller(pod["metadata"].get("ownerReferences") or [])
            if owner.get("kind") == "Sandbox" and owner.get("uid") not in sandboxes and \
                    not pod["metadata"].get("deletionTimestamp"):
                self.remove_pod(name, 30)

    def _refill(self, name: str, pool: dict[str, Any]) -> None:
        for stale in [s for s in self.warm(name) if self._stale(s)]:
            self._delete_sandbox(stale)
        warm = self.warm(name)
        wanted = pool["spec"].get("replicas", 1)
        for _ in range(wanted - len(warm)):
            sandbox = f"{name}-{next(self._names):05d}"
            self._new_sandbox(sandbox, name, "", _owner("SandboxWarmPool", pool))
            self._add_pod(sandbox, self.templates[name], {**self.template_labels[name], LAUNCH_TYPE: "warm",
                                                          WARM_POOL_LABEL: name_hash(name)}, {})
        for sandbox in sorted(warm)[wanted:]:
            self._delete_sandbox(sandbox)
        pool["status"] = {"replicas": min(len(warm), wanted) if wanted < len(warm) else len(self.warm(name)),
                          "readyReplicas": sum(1 for s in self.warm(name) if self._running(s)),
                          "selector": f"agents.x-k8s.io/pool={name}", "observedGeneration": pool["metadata"][
                              "generation"]}

    def _running(self, pod: str) -> bool:
        return (self.pods.get(pod) or {}).get("status", {}).get("phase") == "Running" and \
            not self.pods[pod]["metadata"].get("deletionTimestamp")

    def _new_sandbox(self, name: str, pool: str, claim: str, owner: dict[str, Any]) -> None:
        self.sandboxes[name] = {"pool": pool, "claim": claim, "uid": str(uuid.uuid4()), "owners": [owner],
                                "labels": None, "launch": "cold" if claim else "warm",
                                "template": _spec_hash(self.templates[pool])}

    def _add_pod(self, name: str, spec: dict[str, Any], labels: dict[str, str], annotations: dict[str, str]) -> None:
        """The Sandbox's pod, from its template, as the pods fake creates one (token, process), named after
        its Sandbox and controlled by it (sandbox_controller.go: `SetControllerReference(sandbox, pod)`)."""
        metadata: dict[str, Any] = {"name": name, "namespace": NAMESPACE, "uid": str(uuid.uuid4()),
                                    "creationTimestamp": _now(), "annotations": annotations,
                                    "labels": {"agents.x-k8s.io/sandbox-name-hash": name[-8:], **labels},
                                    "ownerReferences": [{"apiVersion": f"{CORE_GROUP}/v1beta1", "kind": "Sandbox",
                                                         "name": name, "uid": self.sandboxes[name]["uid"],
                                                         "controller": True, "blockOwnerDeletion": True}]}
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": without_empty_maps(metadata), "spec": copy.deepcopy(spec),
               "status": {"phase": "Pending"}}
        self._bump(pod, "ADDED")
        self.pods[name] = pod
        self.created.append(name)
        self.envs[name] = {e["name"]: e.get("value", "") for e in spec["containers"][0].get("env") or []}
        self._project_token(name, spec, metadata["uid"])
        if self.launcher is not None:
            self._start(name)

    def _delete_sandbox(self, sandbox: str) -> None:
        """The Sandbox and, by owner reference, its pod (with its grace period)."""
        self.sandboxes.pop(sandbox, None)
        if sandbox in self.pods:
            self.remove_pod(sandbox, 30)

    def _drop(self, name: str) -> None:
        """The claim is gone from the store: its last version is the deletion's (a DELETED event)."""
        self._bump(self.claims.pop(name), "DELETED")

    def _claim_pod(self, claim: dict[str, Any]) -> str | None:
        sandbox = _assigned(claim)
        return sandbox if sandbox in self.pods else None

    def _release(self, claim: dict[str, Any]) -> None:
        """The claim is going: its Sandbox and pod are deleted after it (owner reference)."""
        if sandbox := _assigned(claim):
            self._delete_sandbox(sandbox)

    def _condition(self, claim: dict[str, Any], kind: str, state: str, reason: str, message: str = "") -> None:
        conditions = claim["status"].setdefault("conditions", [])
        old = next((c for c in conditions if c["type"] == kind), None)
        if old is not None and (old["status"], old["reason"]) == (state, reason):
            return
        new = {"type": kind, "status": state, "reason": reason, "message": message,
               "lastTransitionTime": _now(), "observedGeneration": 1}
        claim["status"]["conditions"] = [c for c in conditions if c["type"] != kind] + [new]
        self._bump(claim)

    def _bind(self, claim: dict[str, Any]) -> None:
        if assigned := _assigned(claim):
            self._adopt(claim, assigned)
            return
        spec, name = claim["spec"], claim["metadata"]["name"]
        pool = spec["warmPoolRef"]["name"]
        if pool not in self.warm_pools:
            self._condition(claim, "Ready", "False", "WarmPoolNotFound", f"SandboxWarmPool {pool} not found")
            return
        extra = spec.get("additionalPodMetadata") or {}
        if problem := pod_metadata_problem(extra, self.allowed_label_domains):
            self._condition(claim, "Ready", "False", "InvalidMetadata", problem)
            return
        labels, notes = dict(extra.get("labels") or {}), dict(extra.get("annotations") or {})
        labels[CLAIM_UID] = claim["metadata"]["uid"]
        ready = [s for s in sorted(self.warm(pool)) if self._running(s) and not self._stale(s)]
        # Warm candidates without a pod IP (here: not running yet) are waited for until the claim is
        # WARM_GRACE_SECONDS old (its creationTimestamp, whole seconds), then the claim goes cold.
        pending = [s for s in self.warm(pool) if s not in ready]
        age = datetime.datetime.now(datetime.UTC).timestamp() - _epoch(claim["metadata"]["creationTimestamp"])
        if not ready and pending and age < WARM_GRACE_SECONDS:
            return
        if ready:  # adoption's first write: the claim names its candidate (`adoptSandboxFromCandidates`)
            self.sandboxes[ready[0]]["claim"] = name  # out of the candidates' queue
            claim["metadata"].setdefault("annotations", {})[SANDBOX_NAME] = ready[0]
            self._bump(claim)
            self._wake.set()
            return
        sandbox = name  # no warm Sandbox ready: a cold one, named after the claim
        self._new_sandbox(sandbox, pool, name, _owner("SandboxClaim", claim))
        self._add_pod(sandbox, self.templates[pool], {**self.template_labels[pool], LAUNCH_TYPE: "cold", **labels},
                      notes)
        claim["status"]["sandbox"] = {"name": sandbox, "podIPs": ["10.0.0.1"]}
        claim["metadata"].setdefault("annotations", {})[SANDBOX_NAME] = sandbox
        self._bump(claim)

    def _adopt(self, claim: dict[str, Any], sandbox: str) -> None:
        """Adoption's later writes, each its own pass so a read between them sees the state before it:
        the Sandbox's owner moved to the claim (`completeAdoption`), then the claim's status, then the
        pod's metadata (the Sandbox controller's sync)."""
        record = self.sandboxes.get(sandbox)
        if record is None:
            return
        if _controller(record["owners"]).get("kind") != "SandboxClaim":
            record["owners"] = [_owner("SandboxClaim", claim)]  # `OwnerReferences = nil`, then the claim's
            self._refill(record["pool"], self.warm_pools[record["pool"]])
        elif not (claim.get("status") or {}).get("sandbox"):
            claim["status"]["sandbox"] = {"name": sandbox, "podIPs": ["10.0.0.1"]}
            self._bump(claim)
        elif sandbox in self.pods and CLAIM_UID not in self.pods[sandbox]["metadata"].get("labels", {}):
            extra = claim["spec"].get("additionalPodMetadata") or {}
            pod = self.pods[sandbox]["metadata"]
            pod["labels"] = {**pod["labels"], **(extra.get("labels") or {}), CLAIM_UID: claim["metadata"]["uid"]}
            pod["annotations"] = {**(pod.get("annotations") or {}), **(extra.get("annotations") or {})}
            without_empty_maps(pod)
            self._bump(self.pods[sandbox])
        else:
            return
        self._wake.set()

    def _observe(self, claim: dict[str, Any], now: float) -> None:
        sandbox = ((claim.get("status") or {}).get("sandbox") or {}).get("name")
        pod = self.pods.get(sandbox or "")
        if sandbox and pod is not None:
            phase = pod["status"].get("phase")
            if phase == "Running":
                self._condition(claim, "Ready", "True", "DependenciesReady")
            elif phase in ("Succeeded", "Failed"):  # sandbox_controller.go `computeFinishedCondition`: no pod reason
                self._condition(claim, "Ready", "False", "SandboxNotReady", "the pod is terminal")
                self._condition(claim, "Finished", "True", f"Pod{phase}",
                                "Pod completed successfully" if phase == "Succeeded" else "Pod failed")
            else:
                self._condition(claim, "Ready", "False", "DependenciesNotReady", "the pod is not running")
        lifecycle = claim["spec"].get("lifecycle") or {}
        expiry = [_epoch(lifecycle["shutdownTime"])] if lifecycle.get("shutdownTime") else []
        finished = next((c for c in claim["status"].get("conditions") or []
                         if c["type"] == "Finished" and c["status"] == "True"), None)
        if finished is not None and lifecycle.get("ttlSecondsAfterFinished") is not None:
            expiry.append(_epoch(finished["lastTransitionTime"]) + lifecycle["ttlSecondsAfterFinished"])
        if not expiry or now < min(expiry) or not self.expiring:
            return
        policy = lifecycle.get("shutdownPolicy", "Retain")
        if policy == "Retain":
            if sandbox in self.sandboxes:
                self._delete_sandbox(sandbox)
            self._condition(claim, "Ready", "False", "ClaimExpired", "the claim expired")
        elif policy == "DeleteForeground":
            claim["metadata"]["deletionTimestamp"] = _now()
            self._bump(claim)
            self._release(claim)
        else:
            self._drop(claim["metadata"]["name"])
            self._release(claim)


def valid_template(pod_spec: dict[str, Any]) -> None:
    """A SandboxTemplate's pod spec as the API server admits its pods: the v1 schema and `ValidatePodSpec`."""
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "template"},
                                  "spec": pod_spec}, KUBE_VERSION, strict=True)
    assert not (problems := pod_spec_problems(pod_spec)), problems


def _controller(refs: list[dict[str, Any]]) -> dict[str, Any]:
    return next((r for r in refs if isinstance(r, dict) and r.get("controller") is True), {})


def _assigned(claim: dict[str, Any]) -> str | None:
    """The Sandbox the claim holds: its status's, else the annotation adoption writes first."""
    return ((claim.get("status") or {}).get("sandbox") or {}).get("name") or \
        (claim["metadata"].get("annotations") or {}).get(SANDBOX_NAME)


def _spec_hash(spec: dict[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True)


def _owner(kind: str, owner: dict[str, Any]) -> dict[str, Any]:
    """A controller's ownerReference (`ctrl.SetControllerReference`) to a pool or a claim."""
    return {"apiVersion": f"{GROUP}/v1beta1", "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
