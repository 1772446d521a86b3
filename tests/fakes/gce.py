"""A fake Compute Engine v1 API: zonal instances and operations, the parts voicefleet uses.

`instances.insert?sourceInstanceTemplate=&requestId=` (409 `alreadyExists` on a reused name; the
same `requestId` returns the same operation), `get`/`delete` (404 `notFound`), `list` with a
`labels.<key>:*` (has the label) or `labels.<key> = <value>` filter and paging,
`instances.setLabels` (replaces every label; the request's `labelFingerprint` must be the
instance's current one, else 412 `conditionNotMet`, as the API documents; each write changes it),
zone `operations.list` with a `targetLink eq "<regex>"`
filter, and the documented error shape `{"error": {"code", "message", "errors": [{"reason"}]}}`.
A request's `metadata` and `labels` *replace* the template's (the worst case: the API reference
does not say whether they merge; iac_review.md item 6), so the provider must send the template's
own items along; `GET global/instanceTemplates/<name>` answers the template. An insert refused
after acceptance (`insert_error`, e.g. no capacity in the zone) is answered like any accepted
insert, a PENDING operation; the failure shows in the operation later (zone `operations.list`),
and no instance appears, as on the real API. List pages hold at most `max_page_size` items (the
real maximum is 500). Auth: none by default (the provider runs with `GCE_AUTH=none` against it);
with `bearer_token` set, a call without `Authorization: Bearer <that token>` is 401 `authError`
("Invalid Credentials"), as the real API answers a missing or expired OAuth token. Instance
templates are global (`global/instanceTemplates/<name>`) or regional
(`regions/<region>/instanceTemplates/<name>`); `template_regions` names the regions that hold one.
`add_template` makes another global template (a release's, with its own metadata items); a
template that does not exist is 404 `notFound`, read or inserted from, as the real API answers.

Projects (GCE_CELLS): `add_project` makes another project with its own zone, instances, operations,
templates and quotas, served at its own `projects/<id>/` paths by the same server. A project the
fake does not hold, or one whose grant is taken away (`denied`), answers 403 `forbidden`, as the
real API answers a caller without the permission there; another zone than the project's is 404
`notFound`. A template is its own project's: inserting from another project's is 404. A
project's `max_instances` is its resource quota: an insert past it is 403 `quotaExceeded`
(nothing made); `rate_limit_body()` is the documented 403 `rateLimitExceeded` of a spent rate quota
(https://cloud.google.com/compute/api-quota), for `fail(403, body=…)`. Its VMs' metadata servers
are under `/metadata/<project>/<instance>`, their tokens naming that project and zone.

The metadata server's instance identity token
(https://cloud.google.com/compute/docs/instances/verifying-instance-identity): each instance's
metadata server is served under `/metadata/<instance>` (`metadata_host(name)` is what that VM's bot
gets as `GCE_METADATA_HOST`: the real server knows which VM asks, the fake by the path, and a
test asks a VM's path only as that VM's bot would). `GET …/instance/service-accounts/default/identity`
needs `Metadata-Flavor: Google` (403 without), an `audience` (400 without) and a RUNNING instance (a
VM that is not running has no bot to ask); `format=full` adds `google.compute_engine`
(`project_id`, `project_number`, `zone`, `instance_id`, `instance_name`,
`instance_creation_timestamp`). Tokens are RS256 JWTs, `iss` `https://accounts.google.com`, an
hour's life, signed with a key published at `/oauth2/v3/certs` as Google publishes its own.

GPUs (https://cloud.google.com/compute/docs/gpus): a VM has one when the insert attaches it
(`guestAccelerators`, N1 machine types only) or its machine type comes with one (G2, A2, A3; the
template's `machine_type`). Such a VM cannot live-migrate: without `onHostMaintenance: TERMINATE`
the insert is refused, 400 `invalidResourceUsage`, as the real API refuses it.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import FakeApi, Handler
from tests.fakes.signing import SigningKey

PROJECT, ZONE, TEMPLATE = "vf-test", "europe-west1-b", "voicefleet-bot"
CHANNEL_AUDIENCE = "wss://dispatcher.example/bots/channel"  # the URL the test deployment's bots dial
IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
SERVICE_ACCOUNT_ID = "104000000000000000001"  # the bots' service account's unique id (azp, sub)
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def gce_error(status: int, reason: str, message: str) -> JSONResponse:
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"domain": "global", "reason": reason, "message": message}],
        }
    }
    return JSONResponse(body, status_code=status)


def rate_limit_body() -> dict[str, Any]:
    """Compute Engine's answer to a call past a rate quota (403; the quota refills within the minute)."""
    return {"error": {"code": 403, "message": "Rate Limit Exceeded", "errors": [
        {"message": "Rate Limit Exceeded", "domain": "usageLimits", "reason": "rateLimitExceeded"}]}}


def metadata_refusal(request: Request) -> Response | None:
    """A metadata server's answer to an identity request without its header or an audience."""
    if request.headers.get("metadata-flavor") != "Google":
        return Response("Missing Metadata-Flavor:Google header.", status_code=403)
    if not request.query_params.get("audience", ""):
        return Response("non-empty audience parameter required", status_code=400)
    return None


class FakeGce(FakeApi):
    error_body = staticmethod(
        lambda status: {
            "error": {
                "code": status,
                "message": "injected",
                "errors": [{"reason": "rateLimitExceeded" if status == 429 else "backendError"}],
            }
        }
    )

    def __init__(self, project: str = PROJECT, zone: str = ZONE) -> None:
        super().__init__()
        self.project, self.zone = project, zone
        self.instances: dict[str, dict[str, Any]] = {}
        self.operations: list[dict[str, Any]] = []
        self.template_metadata = {"startup-script": "#!/bin/sh\n# reads the session's metadata items\n",
                                  "bot-image": "europe-docker.pkg.dev/p/r/bot@sha256:" + "0" * 64}
        self.template_labels = {"role": "bot"}
        self.template_machine_type = "e2-standard-2"  # the stack's botMachineType
        # The template's scheduling, as the stack writes it (stacks/gcp/bot_template.py): a VM inserted without
        # a `scheduling` block gets it (GCE: a VM takes the template's properties the request leaves out).
        self.template_scheduling: dict[str, Any] = {
            "automaticRestart": False, "onHostMaintenance": "MIGRATE", "provisioningModel": "STANDARD",
            "instanceTerminationAction": "DELETE", "maxRunDuration": {"seconds": "2100"}}
        self.insert_error: str | None = None  # e.g. ZONE_RESOURCE_POOL_EXHAUSTED: the op fails
        self.max_page_size = 500
        self.bearer_token: str | None = None  # set: every call must carry it (Authorization: Bearer …)
        self.template_regions: set[str] = set()  # regions with a regional template of TEMPLATE's name
        self.other_templates: dict[str, dict[str, str]] = {}  # global template name → its metadata items
        self._by_request_id: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self.signing_key = SigningKey()
        self.identity_requests: list[tuple[str, str]] = []  # (instance, audience) asked of metadata servers
        self.projects: dict[str, FakeGce] = {project: self}  # every project this fake holds, by id
        self.denied = False  # True: the caller's grant in this project is gone (every call 403)
        self.max_instances: int | None = None  # the project's resource quota (None: none reached)
        self._metadata_root = "/metadata"

    def add_project(self, project: str, zone: str = ZONE) -> FakeGce:
        """Another project, served by this fake at its own paths, with its own state (see above)."""
        other = FakeGce(project, zone)
        other.url, other.signing_key = self.url, self.signing_key
        other._metadata_root = f"/metadata/{project}"
        self.projects[project] = other
        return other

    @property
    def zone_path(self) -> str:
        return f"/compute/v1/projects/{self.project}/zones/{self.zone}"

    @property
    def env(self) -> dict[str, str]:
        """What points the `gce` provider at this fake (add test-specific knobs on top)."""
        return {
            "GCE_PROJECT": self.project,
            "GCE_ZONE": self.zone,
            "GCE_INSTANCE_TEMPLATE": TEMPLATE,
            "GCE_API_URL": self.url,
            "GCE_AUTH": "none",
            "GCE_POLL_SECONDS": "0.05",
            "GCE_IDENTITY_CERTS_URL": f"{self.root}/oauth2/v3/certs",
            "BOT_IDENTITY_AUDIENCE": CHANNEL_AUDIENCE,
        }

    def metadata_host(self, name: str) -> str:
        """`GCE_METADATA_HOST` for the bot on instance `name` (its own metadata server)."""
        return f"{self.root.removeprefix('http://')}{self._metadata_root}/{name}"

    @property
    def root(self) -> str:
        """The server's own address (`url` is the Compute API's: GCE_API_URL)."""
        return self.url.removesuffix("/compute/v1")

    def routes(self) -> list[Route]:
        z, each = "/compute/v1/projects/{project}/zones/{zone}", self._in_project
        return [
            Route(f"{z}/instances", each(FakeGce.insert), methods=["POST"]),
            Route(f"{z}/instances", each(FakeGce.list_instances), methods=["GET"]),
            Route(z + "/instances/{name}", each(FakeGce.get), methods=["GET"]),
            Route(z + "/instances/{name}", each(FakeGce.delete), methods=["DELETE"]),
            Route(z + "/instances/{name}/setLabels", each(FakeGce.set_labels), methods=["POST"]),
            Route(f"{z}/operations", each(FakeGce.list_operations), methods=["GET"]),
            Route("/metadata/{name}" + IDENTITY_PATH, self.identity, methods=["GET"]),
            Route("/metadata/{project}/{name}" + IDENTITY_PATH, self._project_identity, methods=["GET"]),
            Route("/oauth2/v3/certs", self.certs, methods=["GET"]),
            Route("/compute/v1/projects/{project}/global/instanceTemplates/{name}", each(FakeGce.template),
                  methods=["GET"]),
            Route("/compute/v1/projects/{project}/regions/{region}/instanceTemplates/{name}",
                  each(FakeGce.template), methods=["GET"]),
        ]

    def _in_project(self, endpoint: Callable[[FakeGce, Request], Awaitable[Response]]) -> Handler:
        """`endpoint` answered by the project the path names, as the caller's grants there allow."""
        async def answer(request: Request) -> Response:
            project = self.projects.get(request.path_params["project"])
            if project is None or project.denied:
                return gce_error(403, "forbidden", f"Required 'compute.instances.list' permission for "
                                 f"'projects/{request.path_params['project']}'")
            zone = request.path_params.get("zone")
            if zone is not None and zone != project.zone:
                return gce_error(404, "notFound", f"The resource 'projects/{project.project}/zones/{zone}' "
                                 "was not found")
            return await endpoint(project, request)

        return answer

    async def _project_identity(self, request: Request) -> Response:
        project = self.projects.get(request.path_params["project"])
        if project is None or project is self:
            return Response("not found", status_code=404)
        return await project.identity(request)

    def _wrap(self, endpoint: Handler) -> Handler:
        async def authorized(request: Request) -> Response:
            api_call = request.url.path.startswith("/compute/")  # not the metadata server, nor Google's keys
            if api_call and self.bearer_token is not None and (
                    request.headers.get("authorization") != f"Bearer {self.bearer_token}"):
                return gce_error(401, "authError", "Invalid Credentials")
            return await endpoint(request)

        return super()._wrap(authorized)

    def add_template(self, name: str, **metadata: str) -> str:
        """Another global template, with the default's metadata items but `metadata` (e.g. its
        own `bot-image`); returns its path, as a release's `images` names it."""
        self.other_templates[name] = {**self.template_metadata, **metadata}
        return f"projects/{self.project}/global/instanceTemplates/{name}"

    def _template_exists(self, template: str) -> bool:
        """A partial URL (`projects/…`) or a full one, naming the global or a regional template."""
        path = template[template.find("projects/"):] if "projects/" in template else template
        known = {f"projects/{self.project}/global/instanceTemplates/{n}" for n in (TEMPLATE, *self.other_templates)}
        known |= {f"projects/{self.project}/regions/{r}/instanceTemplates/{TEMPLATE}" for r in self.template_regions}
        return path in known

    async def template(self, request: Request) -> Response:
        region, name = request.path_params.get("region"), request.path_params["name"]
        metadata = self.other_templates.get(name) if region is None else None
        if metadata is None and (name != TEMPLATE.rsplit("/", 1)[-1] or (
                region is not None and region not in self.template_regions)):
            return gce_error(404, "notFound", f"The resource '{request.path_params['name']}' was not found")
        items = [{"key": k, "value": v} for k, v in (metadata or self.template_metadata).items()]
        return JSONResponse({"name": request.path_params["name"],
                             "properties": {"metadata": {"items": items}, "labels": self.template_labels}})

    def set_status(self, name: str, status: str) -> None:
        self.instances[name]["status"] = status

    def _operation(self, kind: str, name: str, error: str | None = None) -> dict[str, Any]:
        op: dict[str, Any] = {
            "kind": "compute#operation",
            "id": str(next(self._ids)),
            "name": f"operation-{next(self._ids)}",
            "operationType": kind,
            "targetLink": f"https://compute.googleapis.com{self.zone_path}/instances/{name}",
            "status": "DONE" if error else "RUNNING",
        }
        if error:
            op["error"] = {"errors": [{"code": error, "message": f"{error} for {name}"}]}
        self.operations.append(op)
        return op

    async def insert(self, request: Request) -> Response:
        if request_id := request.query_params.get("requestId"):
            if request_id in self._by_request_id:
                return JSONResponse(self._by_request_id[request_id])
        template = request.query_params.get("sourceInstanceTemplate", "")
        if "instanceTemplates/" not in template:
            return gce_error(400, "invalid", "sourceInstanceTemplate is required")
        if not self._template_exists(template):
            return gce_error(404, "notFound", f"The resource '{template}' was not found")
        body = await request.json()
        name = body.get("name", "")
        if not _NAME.match(name):
            return gce_error(400, "invalid", f"Invalid value for field 'resource.name': '{name}'")
        if name in self.instances:
            return gce_error(
                409,
                "alreadyExists",
                f"The resource 'projects/{self.project}/zones/{self.zone}/instances/{name}' already exists",
            )
        if refused := self._gpu_refusal(body):
            return refused
        if self.max_instances is not None and len(self.instances) >= self.max_instances:
            return gce_error(403, "quotaExceeded", f"Quota 'INSTANCES' exceeded. Limit: {self.max_instances:.1f} "
                             f"in region {self.zone.rsplit('-', 1)[0]}.")
        if self.insert_error:
            failed = self._operation("insert", name, self.insert_error)
            # The caller sees the operation as accepted; its error is recorded for operations.list.
            op = {k: v for k, v in failed.items() if k != "error"} | {"status": "PENDING"}
        else:
            given = body.get("metadata", {}).get("items")
            metadata = ({i["key"]: i["value"] for i in given} if given is not None else dict(self.template_metadata))
            self.instances[name] = {
                "kind": "compute#instance",
                "name": name,
                "status": "PROVISIONING",
                "creationTimestamp": datetime.now(UTC).isoformat(),
                "labels": body["labels"] if "labels" in body else dict(self.template_labels),
                "labelFingerprint": self._fingerprint(),
                "metadata": {"items": [{"key": k, "value": v} for k, v in metadata.items()]},
                "scheduling": body["scheduling"] if "scheduling" in body else dict(self.template_scheduling),
                "sourceInstanceTemplate": template,
                "guestAccelerators": body.get("guestAccelerators", []),
            }
            op = self._operation("insert", name)
        if request_id:
            self._by_request_id[request_id] = op
        return JSONResponse(op)

    def _gpu_refusal(self, body: dict[str, Any]) -> Response | None:
        family = self.template_machine_type.split("-", 1)[0]
        attached = body.get("guestAccelerators") or []
        if attached and family != "n1":
            return gce_error(400, "invalid", f"Accelerators cannot be attached to machine type "
                             f"'{self.template_machine_type}'")
        scheduling = body["scheduling"] if "scheduling" in body else self.template_scheduling
        if (attached or family in ("g2", "a2", "a3")) and scheduling.get("onHostMaintenance") != "TERMINATE":
            return gce_error(400, "invalidResourceUsage", "Invalid resource usage: 'Instances with guest "
                             "accelerators do not support live migration.'")
        return None

    async def get(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.instances:
            return gce_error(404, "notFound", f"The resource '{name}' was not found")
        return JSONResponse(self.instances[name])

    def _fingerprint(self) -> str:
        return f"fp{next(self._ids)}="

    async def set_labels(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.instances:
            return gce_error(404, "notFound", f"The resource '{name}' was not found")
        body = await request.json()
        instance = self.instances[name]
        if body.get("labelFingerprint") != instance["labelFingerprint"]:
            return gce_error(412, "conditionNotMet",
                             "Labels fingerprint either invalid or resource labels have changed")
        instance["labels"] = dict(body.get("labels") or {})
        instance["labelFingerprint"] = self._fingerprint()
        return JSONResponse(self._operation("setLabels", name))

    def relabel_behind_our_back(self, name: str, **labels: str) -> None:
        """Another writer changes labels (and so the fingerprint) between a reader's GET and write."""
        self.instances[name]["labels"] = {**self.instances[name]["labels"], **labels}
        self.instances[name]["labelFingerprint"] = self._fingerprint()

    async def delete(self, request: Request) -> Response:
        name = request.path_params["name"]
        if self.instances.pop(name, None) is None:
            return gce_error(404, "notFound", f"The resource '{name}' was not found")
        return JSONResponse(self._operation("delete", name))

    async def list_instances(self, request: Request) -> Response:
        items = list(self.instances.values())
        given = request.query_params.get("filter", "")
        if match := re.fullmatch(r"labels\.([-\w]+):\*", given):
            items = [i for i in items if match.group(1) in i["labels"]]
        elif match := re.fullmatch(r"labels\.([-\w]+) = ([-\w]+)", given):
            items = [i for i in items if i["labels"].get(match.group(1)) == match.group(2)]
        elif given:
            return gce_error(400, "invalid", f"Invalid list filter expression '{given}'")
        size = min(self.max_page_size, int(request.query_params.get("maxResults", "500")))
        start = int(request.query_params.get("pageToken", "0"))
        page: dict[str, Any] = {"kind": "compute#instanceList", "items": items[start : start + size]}
        if start + size < len(items):
            page["nextPageToken"] = str(start + size)
        return JSONResponse(page)

    async def identity(self, request: Request) -> Response:
        name = request.path_params["name"]
        if (refused := metadata_refusal(request)) is not None:
            return refused
        audience = request.query_params["audience"]
        instance = self.instances.get(name)
        if instance is None or instance["status"] != "RUNNING":
            return Response("not found", status_code=404)
        self.identity_requests.append((name, audience))
        return Response(self.identity_token(name, audience, full=request.query_params.get("format") == "full"),
                        media_type="text/html")

    def identity_token(self, name: str, audience: str, *, full: bool = True, lifetime: int = 3600,
                       issued: float | None = None) -> str:
        """What instance `name`'s metadata server answers (tests mint expired ones with `issued`)."""
        now = int(time.time() if issued is None else issued)
        claims: dict[str, Any] = {"iss": "https://accounts.google.com", "aud": audience, "azp": SERVICE_ACCOUNT_ID,
                                  "sub": SERVICE_ACCOUNT_ID, "iat": now, "exp": now + lifetime}
        if full:
            instance = self.instances.get(name, {})
            created = instance.get("creationTimestamp")
            claims["google"] = {"compute_engine": {
                "project_id": self.project, "project_number": 123456789012, "zone": self.zone,
                "instance_id": str(abs(hash(name)) % 10**19), "instance_name": name,
                "instance_creation_timestamp": int(datetime.fromisoformat(created).timestamp()) if created else now,
            }}
        return self.signing_key.sign(claims)

    async def certs(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.signing_key.jwk()]})

    async def list_operations(self, request: Request) -> Response:
        ops = self.operations
        if match := re.fullmatch(r'targetLink eq "(.*)"', request.query_params.get("filter", "")):
            ops = [op for op in ops if re.fullmatch(match.group(1), op["targetLink"])]
        return JSONResponse({"kind": "compute#operationList", "items": ops})
