"""A fake Cloud Run Admin API v2 for a deployment's jobs' executions: `jobs.run`,
`executions.get/list/cancel`, `tasks.list`, and each execution's metadata server (its identity token).

Following the documented contract (googleapis `job.proto`, `execution.proto`, `task_template.proto`;
machines_apis.md §3, §8), never more lenient:
- `POST …/jobs/J:run` with `overrides`: `containerOverrides[].name` must name a container of the
  job; `env` *merges* by name with the job's; names `PORT`, `CLOUD_RUN_*` and `K_*` are reserved,
  a value holds at most 32768 characters and a container at most 1000 variables (400
  `INVALID_ARGUMENT`); `taskCount` 1…10000; `timeout` whole seconds ("600s"), at least 1 s, at most 168 h.
  Every call needs its IAM permission (`permissions`: `run.jobs.run`, `run.jobs.runWithOverrides`
  for a run with overrides, `run.executions.get|list|cancel`, `run.tasks.list`); one taken away is
  403 `PERMISSION_DENIED` (`grant_overrides=False` takes the overrides one).
  The body is read as proto3 JSON is: a field the message does not have is 400 `INVALID_ARGUMENT`
  (`Unknown name`). Env names are C identifiers (the field's stricter documented revision).
  A given `etag` other than the job's is 409 `ABORTED`.
  Past `max_running` running executions (the quota: 1000 per project and region): 429
  `RESOURCE_EXHAUSTED` with a `QuotaFailure` detail. The answer is the run's operation, not done,
  its `metadata` the new `Execution`. Each run makes a new execution (`<job>-<5 letters>`): no
  idempotency key.
- `Execution`: `template` (the tasks' template: the job's containers with the overrides merged),
  `createTime`, `startTime`, `completionTime`, counts in proto3 JSON (a zero is left out).
- `POST …/executions/E:cancel`: a running execution is cancelled (`cancelledCount`, completed) once
  its task has stopped (its process has exited after SIGTERM), not at the call;
  a finished one is 400 `FAILED_PRECONDITION` (the API documents no answer: the stricter one).
- Projects: the deployment's own (`project`, `region`) and any `add_project` made (another cell's,
  `CLOUDRUN_CELLS`), each with its own job of the deployment's containers, its own quota of running
  executions (`max_running`: a run counts its project's alone), its own IAM grants to the dispatcher
  (`permissions`) and its own bots' service account (the identity tokens its executions' metadata
  servers mint name it). A project the fake does not hold is 403 `PERMISSION_DENIED` "(or it may
  not exist)": the dispatcher holds no grant there; a region other than the project's holds no job (404).
  A path may name a project by its id or, as Google's APIs take either, its `number`; a project
  given one (`names_by_number`) names its executions by it (`projects/<number>/…`): Google documents
  `Execution.name` as output only, with no format, so the dispatcher must not rely on either form.
- Jobs: the deployment's own (`job`) and any `add_job` made (a release's, with its own image). A job
  that does not exist is 404 `NOT_FOUND` ("Resource … of kind 'JOB' … does not exist."), with the
  permissions held on the project; `granted_jobs` set: they are held on those jobs alone (the
  stack's `JobIamMember`), and any other job, existing or not, is 403 `PERMISSION_DENIED`
  "(or it may not exist)", as IAM answers before the job is looked up. An execution is read,
  listed, cancelled only under its own job.
- Errors are AIP-193: `{"error": {code, message, status, details}}`. Injected 429s (`fail`) carry
  an `ErrorInfo` `RATE_LIMIT_EXCEEDED`; other injected ones `UNAVAILABLE`.
- `launcher` set: each run starts a real process for its task (the bot), `pending_seconds` after
  the run (the execution is starting until then: scheduling takes time), with the merged env plus
  `CLOUD_RUN_JOB`, `CLOUD_RUN_EXECUTION`, `CLOUD_RUN_TASK_INDEX/ATTEMPT/COUNT` and
  `GCE_METADATA_HOST` at its own metadata server; its exit ends the execution (0: succeeded, else
  failed with the code in the task's `lastAttemptResult`), a cancel sends it SIGTERM. The job's
  `maxRetries` is 0, so a failed task is not run again.
- Auth, on by default as Google's: every `/v2/` call needs `Authorization: Bearer <token>` issued by
  the fake's own OAuth 2.0 token endpoint (`POST /token`, the JWT-bearer grant google-auth's
  service-account credentials make, its assertion signed with the key of `credentials_file`, for
  the `cloud-platform` scope), else 401 `UNAUTHENTICATED`. `credentials_file` is that service
  account's key file, which google-auth reads as Application Default Credentials
  (GOOGLE_APPLICATION_CREDENTIALS); `token_failure` set: the endpoint answers it (a 500 is
  Google's `internal_failure`); `key_deleted`: 400 `invalid_grant`, as for a deleted key.
- The metadata server (`/metadata/<execution>/computeMetadata/v1/instance/service-accounts/default/
  identity`) needs `Metadata-Flavor: Google`, an `audience`, a running execution; its RS256 token
  names the service account only (`sub`, `azp`: `SERVICE_ACCOUNT_ID`), as Cloud Run's do.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import string
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt as google_jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.cloud_run import google_error, rfc3339
from tests.fakes.gce import metadata_refusal
from tests.fakes.server import FakeApi, Handler
from tests.fakes.signing import SigningKey

PROJECT, REGION, JOB = "vf-test", "europe-west1", "vf-bot"
CHANNEL_AUDIENCE = "wss://dispatcher.example/bots/channel"
SERVICE_ACCOUNT_ID = "104000000000000000777"  # the bots' service account's unique id
IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
MAX_ENV, MAX_VALUE, MAX_TIMEOUT = 1000, 32768, 168 * 3600
_RESERVED = re.compile(r"^(PORT|CLOUD_RUN_.*|K_.*)$")
EXECUTION_TYPE = "type.googleapis.com/google.cloud.run.v2.Execution"
PERMISSIONS = frozenset({"run.jobs.run", "run.jobs.runWithOverrides", "run.executions.get", "run.executions.list",
                         "run.executions.cancel", "run.tasks.list"})
# The fields of RunJobRequest and its overrides (googleapis job.proto, k8s.min.proto EnvVar).
RUN_FIELDS = {"overrides", "validateOnly", "etag"}
OVERRIDES_FIELDS = {"containerOverrides", "taskCount", "timeout"}
CONTAINER_OVERRIDE_FIELDS = {"name", "args", "env", "clearArgs"}
ENV_FIELDS = {"name", "value", "valueSource"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # an assertion names it, wherever it is sent
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DISPATCHER_ACCOUNT = "vf-dispatcher@vf-test.iam.gserviceaccount.com"


@dataclass
class FakeProject:
    """One GCP project's own: its region, its job of the deployment's containers, its quota of running
    executions, the permissions the dispatcher holds there, its bots' service account."""

    name: str
    region: str
    job: str
    max_running: int = 1000
    permissions: set[str] = field(default_factory=lambda: set(PERMISSIONS))
    service_account_id: str = SERVICE_ACCOUNT_ID
    number: str | None = None  # the project's number, which a path may name it by
    names_by_number: bool = False  # its executions' names carry the number, not the id


def _invalid(message: str) -> JSONResponse:
    return google_error(400, "INVALID_ARGUMENT", message)


def _unknown_fields(body: Any) -> JSONResponse | None:
    """Google's answer to a field the request's message does not have (proto3 JSON parsing)."""
    def unknown(value: Any, fields: set[str], where: str) -> str | None:
        if not isinstance(value, dict):
            return f"{where}: not an object" if value is not None else None
        extra = sorted(set(value) - fields)
        return f'Unknown name "{extra[0]}" at \'{where}\': Cannot find field.' if extra else None

    overrides = body.get("overrides") if isinstance(body, dict) else None
    problems = [unknown(body, RUN_FIELDS, "request"), unknown(overrides, OVERRIDES_FIELDS, "overrides")]
    for i, given in enumerate((overrides or {}).get("containerOverrides") or [] if isinstance(overrides, dict) else []):
        problems.append(unknown(given, CONTAINER_OVERRIDE_FIELDS, f"overrides.container_overrides[{i}]"))
        for j, item in enumerate(given.get("env") or [] if isinstance(given, dict) else []):
            problems.append(unknown(item, ENV_FIELDS, f"overrides.container_overrides[{i}].env[{j}]"))
    problem = next((p for p in problems if p), None)
    return _invalid(f"Invalid JSON payload received. {problem}") if problem else None


class FakeCloudRunJobs(FakeApi):
    error_body = staticmethod(lambda status: {"error": {
        "code": status, "message": "injected",
        "status": "RESOURCE_EXHAUSTED" if status == 429 else "UNAVAILABLE",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
                     "domain": "run.googleapis.com"}] if status == 429 else []}})

    def __init__(self, project: str = PROJECT, region: str = REGION, job: str = JOB) -> None:
        super().__init__()
        self.project, self.region, self.job = project, region, job
        self.projects = {project: FakeProject(project, region, job)}
        self.containers: list[dict[str, Any]] = [{
            "name": "bot", "image": "europe-docker.pkg.dev/p/r/bot@sha256:" + "0" * 64,
            "env": [{"name": "BOT_CHANNEL_URL", "value": CHANNEL_AUDIENCE}]}]
        self.max_retries = 0
        self.etag = '"job-etag-1"'
        self.pending_seconds = 0.1  # a run's task is scheduled this long after the run (the execution: starting)
        self.max_page_size = 100
        self.tokens: set[str] = set()  # access tokens the token endpoint issued
        self.token_failure: int | None = None  # set: the token endpoint answers this status
        self.key_deleted = False  # True: the key file's key was deleted from its service account
        self._account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._key_dir = tempfile.TemporaryDirectory()
        # Resource name (`projects/P/locations/R/jobs/J/executions/E`, as the API names it) -> Execution: the
        # API's names are project-scoped, so two projects may each hold an execution named E.
        self.executions: dict[str, dict[str, Any]] = {}
        self.exit_codes: dict[str, int] = {}
        # (env) -> a process standing in for the task; None: executions move only when a test says
        self.launcher: Callable[[dict[str, str]], subprocess.Popen[bytes]] | None = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.cancelling: set[str] = set()  # cancelled executions whose task has not stopped yet
        self.signing_key = SigningKey()
        self._lock = threading.RLock()
        self.other_jobs: dict[str, list[dict[str, Any]]] = {}  # job name → its containers (`add_job`)
        self.granted_jobs: set[str] | None = None  # None: the permissions hold on the project

    # The deployment's own project's quota and grants, as the tests of one project set them.
    @property
    def max_running(self) -> int:
        return self.projects[self.project].max_running

    @max_running.setter
    def max_running(self, value: int) -> None:
        self.projects[self.project].max_running = value

    @property
    def permissions(self) -> set[str]:
        return self.projects[self.project].permissions

    @permissions.setter
    def permissions(self, value: set[str]) -> None:
        self.projects[self.project].permissions = value

    def add_project(self, name: str, *, region: str | None = None, job: str | None = None, max_running: int = 1000,
                    service_account_id: str = SERVICE_ACCOUNT_ID, number: str | None = None) -> FakeProject:
        """Another project (a cell), with its own job of the deployment's containers."""
        self.projects[name] = FakeProject(name, region or self.region, job or self.job, max_running,
                                          service_account_id=service_account_id, number=number)
        return self.projects[name]

    def add_job(self, name: str, image: str) -> str:
        """Another job of the project and region, like the deployment's but running `image` (a
        release's); returns its path, as a release's `images` names it."""
        self.other_jobs[name] = [dict(self.containers[0], image=image)]
        return f"projects/{self.project}/locations/{self.region}/jobs/{name}"

    def _containers(self, project: str, region: str, job: str) -> list[dict[str, Any]] | None:
        own = self.projects[project]
        if region != own.region:
            return None
        if job == own.job:
            return self.containers
        return self.other_jobs.get(job) if project == self.project else None

    def _job_refusal(self, request: Request, permission: str) -> JSONResponse | None:
        """IAM first (in a project the dispatcher is granted on, on `granted_jobs` only there), then
        whether the job exists."""
        project, region, job = (request.path_params[k] for k in ("project", "region", "job"))
        resource = f"projects/{project}/locations/{region}/jobs/{job}"
        refused = google_error(403, "PERMISSION_DENIED", f"Permission '{permission}' denied on resource "
                               f"'{resource}' (or it may not exist).")
        if project not in self.projects or permission not in self.projects[project].permissions:
            return refused
        if project == self.project and self.granted_jobs is not None and job not in self.granted_jobs:
            return refused
        if self._containers(project, region, job) is None:
            return google_error(404, "NOT_FOUND", f"Resource '{job}' of kind 'JOB' in region '{region}' "
                                                  f"in project '{project}' does not exist.")
        return None

    @property
    def grant_overrides(self) -> bool:
        return "run.jobs.runWithOverrides" in self.permissions

    @grant_overrides.setter
    def grant_overrides(self, granted: bool) -> None:
        (self.permissions.add if granted else self.permissions.discard)("run.jobs.runWithOverrides")

    def _denied(self, project: str, permission: str) -> JSONResponse | None:
        if permission in self.projects[project].permissions:
            return None
        return google_error(403, "PERMISSION_DENIED", f"Permission '{permission}' denied on resource '{self.job}' "
                                                      "(or it may not exist).")

    @property
    def job_path(self) -> str:
        return f"/v2/projects/{self.project}/locations/{self.region}/jobs/{self.job}"

    @property
    def jobs_path(self) -> str:
        return "/v2/projects/{project}/locations/{region}/jobs/{job}"

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v2")

    @property
    def env(self) -> dict[str, str]:
        """What points the `cloudrun` provider at this fake."""
        return {"CLOUDRUN_PROJECT": self.project, "CLOUDRUN_REGION": self.region, "CLOUDRUN_JOB": self.job,
                "CLOUDRUN_API_URL": self.url, "CLOUDRUN_AUTH": "adc", "CLOUDRUN_POLL_SECONDS": "0.05",
                "GOOGLE_APPLICATION_CREDENTIALS": self.credentials_file,
                "CLOUDRUN_IDENTITY_CERTS_URL": f"{self.root}/oauth2/v3/certs",
                "CLOUDRUN_BOT_SERVICE_ACCOUNT_ID": SERVICE_ACCOUNT_ID, "BOT_IDENTITY_AUDIENCE": CHANNEL_AUDIENCE}

    @property
    def token_uri(self) -> str:
        return f"{self.root}/token"

    @property
    def credentials_file(self) -> str:
        """The dispatcher's service account key file, naming this fake's token endpoint."""
        path = os.path.join(self._key_dir.name, "dispatcher-key.json")
        pem = self._account_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode()
        with open(path, "w") as out:
            json.dump({"type": "service_account", "project_id": self.project, "private_key_id": "k1",
                       "private_key": pem, "client_email": DISPATCHER_ACCOUNT, "client_id": "1",
                       "token_uri": self.token_uri}, out)
        return path

    def metadata_host(self, execution: str) -> str:
        """Execution `execution`'s metadata server (`full_name`: each task's own, by its resource name)."""
        return f"{self.root.removeprefix('http://')}/metadata/{self.full_name(execution)}"

    def routes(self) -> list[Route]:
        j = self.jobs_path
        return [
            Route(j + ":run", self.run, methods=["POST"]),
            Route(j + "/executions", self.list_executions, methods=["GET"]),
            Route(j + "/executions/{name}", self.get, methods=["GET"]),
            Route(j + "/executions/{name}:cancel", self.cancel, methods=["POST"]),
            Route(j + "/executions/{name}/tasks", self.tasks, methods=["GET"]),
            Route("/metadata/{name:path}" + IDENTITY_PATH, self.identity, methods=["GET"]),
            Route("/oauth2/v3/certs", self.certs, methods=["GET"]),
            Route("/token", self.token, methods=["POST"]),
        ]

    def _wrap(self, endpoint: Handler) -> Handler:
        async def authorized(request: Request) -> Response:
            if "project" in request.path_params:  # a project named by its number is that project
                request.path_params["project"] = self._project_id(request.path_params["project"])
            api_call = request.url.path.startswith("/v2/")
            if api_call and request.headers.get("authorization", "").removeprefix("Bearer ") not in self.tokens:
                return google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
            return await endpoint(request)

        return super()._wrap(authorized)

    # --- the test's controls ---
    def of_session(self, session_id: str) -> list[dict[str, Any]]:
        return [e for e in list(self.executions.values()) if self.env_of(e).get("VOICEFLEET_SESSION_ID") == session_id]

    @staticmethod
    def env_of(execution: Mapping[str, Any]) -> dict[str, str]:
        return {i["name"]: i.get("value", "") for c in execution["template"]["containers"] for i in c.get("env", [])}

    def running(self, project: str | None = None) -> int:
        """Running executions, of every project or of `project`'s alone."""
        return sum(1 for e in self.executions.values()
                   if not e.get("completionTime") and project in (None, self.project_of(e)))

    def project_of(self, execution: Mapping[str, Any]) -> str:
        """The id of the project an execution runs in, its name carrying the id or the number."""
        return self._project_id(str(execution["name"]).split("/")[1])

    def _project_id(self, named: str) -> str:
        return next((p.name for p in self.projects.values() if p.number is not None and p.number == named), named)

    def full_name(self, name: str) -> str:
        """The resource name of execution `name`: given whole, or its short name, which one project alone
        must hold (a test of executions of the same name in two projects names them whole)."""
        if "/" in name:
            return name
        [full] = [n for n in self.executions if n.rsplit("/", 1)[-1] == name] or [name]
        return full

    def execution(self, name: str) -> dict[str, Any]:
        """Execution `name` (its resource name, or its short name: `full_name`)."""
        return self.executions[self.full_name(name)]

    def process(self, name: str) -> subprocess.Popen[bytes]:
        """The task process of execution `name` (`full_name`), with a `launcher`."""
        return self.processes[self.full_name(name)]

    def _named(self, request: Request) -> str:
        """The resource name of the execution a path names, its project as the project names its executions."""
        project, region, job, name = (request.path_params[k] for k in ("project", "region", "job", "name"))
        own = self.projects.get(project)
        named = own.number if own is not None and own.names_by_number and own.number else project
        return f"projects/{named}/locations/{region}/jobs/{job}/executions/{name}"

    def set_state(self, name: str, state: str, exit_code: int | None = None) -> None:
        """starting | started | succeeded | failed (exit_code) | cancelled: as the API would report it."""
        name = self.full_name(name)
        with self._lock:
            e = self.executions[name]
            now = rfc3339(datetime.now(UTC))
            for key in ("startTime", "completionTime", "runningCount", "succeededCount", "failedCount",
                        "cancelledCount"):
                if state == "starting" or key != "startTime":
                    e.pop(key, None)
            if state == "started":
                e.update(startTime=e.get("startTime") or now, runningCount=1)
            elif state in ("succeeded", "failed", "cancelled"):
                e.setdefault("startTime", now)
                e.update(completionTime=now, **{f"{state}Count": 1})
                if state == "failed":
                    self.exit_codes[name] = 1 if exit_code is None else exit_code

    def lose(self, name: str) -> None:
        """The task dies with the machine under it (no exit code the bot chose): a failed execution."""
        name = self.full_name(name)
        process = self.processes.get(name)
        if process is not None and process.poll() is None:
            process.kill()
        self.set_state(name, "failed", exit_code=137)

    def close(self) -> None:
        for process in list(self.processes.values()):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        self._key_dir.cleanup()

    async def token(self, request: Request) -> Response:
        """Google's OAuth 2.0 token endpoint, for the JWT-bearer grant of a service account key."""
        if self.token_failure is not None:
            return JSONResponse({"error": "internal_failure"}, status_code=self.token_failure)
        form = dict(await request.form())
        public = self._account_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        try:
            claims = google_jwt.decode(str(form.get("assertion", "")), certs=public.decode(),
                                       audience=GOOGLE_TOKEN_AUDIENCE)
        except ValueError:
            claims = {}
        if not claims or self.key_deleted:
            return JSONResponse({"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
                                status_code=400)
        if form.get("grant_type") != JWT_BEARER or claims.get("iss") != DISPATCHER_ACCOUNT:
            return JSONResponse({"error": "invalid_grant", "error_description": "Invalid grant"}, status_code=400)
        if CLOUD_PLATFORM not in str(claims.get("scope", "")).split():
            return JSONResponse({"error": "invalid_scope", "error_description": "Invalid OAuth scope"},
                                status_code=400)
        token = "ya29." + uuid.uuid4().hex
        self.tokens.add(token)
        return JSONResponse({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    # --- the API ---
    async def run(self, request: Request) -> Response:
        body = await request.json() if await request.body() else {}
        project, region, job = (request.path_params[k] for k in ("project", "region", "job"))
        if (refused := self._job_refusal(request, "run.jobs.run")) or (refused := _unknown_fields(body)):
            return refused
        if body.get("etag") not in (None, "", self.etag):
            return google_error(409, "ABORTED", "The etag of the job does not match: it changed")
        overrides = body.get("overrides") or {}
        if overrides and (refused := self._denied(project, "run.jobs.runWithOverrides")):
            return refused
        containers = [dict(c, env=list(c.get("env", []))) for c in self._containers(project, region, job) or []]
        for given in overrides.get("containerOverrides") or []:
            target = next((c for c in containers if c["name"] == given.get("name")), None)
            if target is None:
                return _invalid(f"containerOverrides: no container named {given.get('name')!r} in the job")
            merged = {e["name"]: e for e in target["env"]}
            for item in given.get("env") or []:
                name, value = str(item.get("name", "")), item.get("value", "")
                if not _ENV_NAME.match(name):
                    return _invalid(f"env: {name!r} is not a valid environment variable name")
                if _RESERVED.match(name):
                    return _invalid(f"env: {name!r} is a reserved name")
                if len(str(value)) > MAX_VALUE:
                    return _invalid(f"env {name}: value longer than {MAX_VALUE} characters")
                merged[name] = {"name": name, "value": str(value)}
            if len(merged) > MAX_ENV:
                return _invalid(f"env: more than {MAX_ENV} variables")
            target["env"] = list(merged.values())
            if given.get("clearArgs"):
                target.pop("args", None)
            elif given.get("args"):
                target["args"] = list(given["args"])
        task_count = overrides.get("taskCount", 1)
        if not isinstance(task_count, int) or not 1 <= task_count <= 10000:
            return _invalid("taskCount must be between 1 and 10000")
        timeout = str(overrides.get("timeout", "600s"))
        if not re.fullmatch(r"\d+s", timeout) or not 1 <= int(timeout[:-1]) <= MAX_TIMEOUT:
            return _invalid(f"timeout {timeout!r}: whole seconds, at most {MAX_TIMEOUT}s")
        with self._lock:
            limit = self.projects[project].max_running  # the quota is the project's (and region's) own
            if self.running(project) >= limit:
                return JSONResponse({"error": {
                    "code": 429, "status": "RESOURCE_EXHAUSTED",
                    "message": "Quota exceeded for running job executions per project per region",
                    "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                        "subject": f"projects/{project}/locations/{region}",
                        "description": f"running executions: limit {limit}"}]}]}}, status_code=429)
            name = f"{job}-" + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))  # noqa: S311
            own = self.projects[project]
            named = own.number if own.names_by_number and own.number else project
            full = f"projects/{named}/locations/{region}/jobs/{job}/executions/{name}"
            execution: dict[str, Any] = {
                "name": full, "uid": str(uuid.uuid4()), "job": job, "createTime": rfc3339(datetime.now(UTC)),
                "taskCount": task_count, "parallelism": task_count,
                "template": {"containers": containers, "maxRetries": self.max_retries, "timeout": timeout},
                "etag": f'"{uuid.uuid4().hex[:8]}"'}
            self.executions[full] = execution
        if self.launcher is not None:  # the task is scheduled a little later: the execution is starting till then
            timer = threading.Timer(self.pending_seconds, self._start, (full, containers[0]))
            timer.daemon = True
            timer.start()
        operation = {"name": f"projects/{project}/locations/{region}/operations/{uuid.uuid4()}",
                     "metadata": {"@type": EXECUTION_TYPE, **execution}, "done": False}
        return JSONResponse(operation)

    def _start(self, name: str, container: Mapping[str, Any]) -> None:
        assert self.launcher is not None
        with self._lock:
            if self.executions[name].get("completionTime"):  # cancelled while pending: no task runs
                return
        env = {e["name"]: e["value"] for e in container["env"]} | {
            "CLOUD_RUN_JOB": self.executions[name]["job"], "CLOUD_RUN_EXECUTION": name.rsplit("/", 1)[-1],
            "CLOUD_RUN_TASK_INDEX": "0",
            "CLOUD_RUN_TASK_ATTEMPT": "0", "CLOUD_RUN_TASK_COUNT": "1", "GCE_METADATA_HOST": self.metadata_host(name)}
        process = self.launcher(env)
        self.processes[name] = process
        self.set_state(name, "started")

        def watch() -> None:
            code = process.wait()
            with self._lock:
                if name in self.cancelling:
                    self.set_state(name, "cancelled")  # done once its task has stopped, not at the cancel
                elif not self.executions[name].get("completionTime"):
                    self.set_state(name, "succeeded" if code == 0 else "failed", exit_code=code)

        threading.Thread(target=watch, daemon=True).start()

    def _execution_refusal(self, request: Request, permission: str) -> JSONResponse | None:
        """The job's refusal, else 404 for an execution that is not of this job (in this project)."""
        project, region, job, name = (request.path_params[k] for k in ("project", "region", "job", "name"))
        if refused := self._job_refusal(request, permission):
            return refused
        execution = self.executions.get(self._named(request))
        if execution is None or execution["job"] != job or self.project_of(execution) != project:
            return google_error(404, "NOT_FOUND", f"Resource '{name}' of kind 'EXECUTION' in region '{region}' "
                                                  f"in project '{project}' does not exist.")
        return None

    async def get(self, request: Request) -> Response:
        if refused := self._execution_refusal(request, "run.executions.get"):
            return refused
        return JSONResponse(self.executions[self._named(request)])

    async def list_executions(self, request: Request) -> Response:
        project, job = request.path_params["project"], request.path_params["job"]
        if refused := self._job_refusal(request, "run.executions.list"):
            return refused
        items = sorted((e for e in self.executions.values() if e["job"] == job and self.project_of(e) == project),
                       key=lambda e: e["createTime"], reverse=True)
        size = min(self.max_page_size, int(request.query_params.get("pageSize", "100") or 100))
        start = int(request.query_params.get("pageToken", "0") or 0)
        page: dict[str, Any] = {"executions": items[start:start + size]}
        if start + size < len(items):
            page["nextPageToken"] = str(start + size)
        return JSONResponse(page)

    async def cancel(self, request: Request) -> Response:
        if refused := self._execution_refusal(request, "run.executions.cancel"):
            return refused
        name = self._named(request)
        with self._lock:
            if self.executions[name].get("completionTime"):
                return google_error(400, "FAILED_PRECONDITION", f"Execution {name} has already completed")
            process = self.processes.get(name)
            if process is not None and process.poll() is None:
                self.cancelling.add(name)  # its task is stopping: the execution runs until it has
            else:
                self.set_state(name, "cancelled")
        if name in self.cancelling:
            os.kill(process.pid, signal.SIGTERM)
        project, region = request.path_params["project"], request.path_params["region"]
        operation = {"name": f"projects/{project}/locations/{region}/operations/{uuid.uuid4()}",
                     "metadata": {"@type": EXECUTION_TYPE, **self.executions[name]}, "done": False}
        return JSONResponse(operation)

    async def tasks(self, request: Request) -> Response:
        if refused := self._execution_refusal(request, "run.tasks.list"):
            return refused
        name = self._named(request)
        task: dict[str, Any] = {"name": f"{name}/tasks/{name.rsplit('/', 1)[-1]}-task0", "index": 0}
        if name in self.exit_codes:
            task["lastAttemptResult"] = {"exitCode": self.exit_codes[name]}
        return JSONResponse({"tasks": [task]})

    async def identity(self, request: Request) -> Response:
        name = self.full_name(request.path_params["name"])
        if (refused := metadata_refusal(request)) is not None:
            return refused
        audience = request.query_params["audience"]
        execution = self.executions.get(name)
        if execution is None or execution.get("completionTime") or not execution.get("runningCount"):
            return Response("not found", status_code=404)
        account = self.projects[self.project_of(execution)].service_account_id  # its project's bots' own
        return Response(self.identity_token(audience, subject=account), media_type="text/html")

    def identity_token(self, audience: str, *, lifetime: int = 3600, subject: str = SERVICE_ACCOUNT_ID) -> str:
        now = int(time.time())
        return self.signing_key.sign({"iss": "https://accounts.google.com", "aud": audience, "azp": subject,
                                      "sub": subject, "iat": now, "exp": now + lifetime})

    async def certs(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.signing_key.jwk()]})
