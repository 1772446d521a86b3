"""A fake Modal control plane: a gRPC server (grpclib, as the `modal` client) serving the client's own
`modal_proto` messages for exactly the RPCs voicefleet's provider makes (dispatcher/machines/modal/).

The real `modal` client connects to it through `MODAL_SERVER_URL=http://127.0.0.1:<port>` (plain h2c)
with `MODAL_TOKEN_ID`/`MODAL_TOKEN_SECRET` as metadata; any other token is `UNAUTHENTICATED`, and the
V2 Sandbox RPCs also need the short-lived `x-modal-auth-token` that `AuthTokenGet` issued.
Served: `ClientHello`, `AuthTokenGet`, `AppGetOrCreate`, `ImageFromId`, `SecretGetOrCreate` (a V1
create's ephemeral `Secret.from_dict`), `SandboxCreate` (V1: GPU) and `SandboxCreateV2` (CPU),
`SandboxGetFromName`, `SandboxWait`, `SandboxGetTaskId`, `SandboxTagsGet`, `SandboxTagsSet`,
`SandboxTerminate`, `SandboxList` (each V1 and V2). Every other RPC answers `UNIMPLEMENTED` and is
recorded in `unimplemented` (how this list was found: the client was run against the fake).

Modal's documented limits, never more lenient: a name an unfinished Sandbox of the App holds is
`ALREADY_EXISTS`; past `max_running` unfinished Sandboxes a create is `RESOURCE_EXHAUSTED`; an unknown
GPU type ("… is not a valid GPU type", modal.com/docs/guide/gpu) and a `timeout` over 24 h
(modal.com/docs/guide/sandbox) are `INVALID_ARGUMENT`; an unknown image is `NOT_FOUND`; a GPU Sandbox
on the V2 RPC is `INVALID_ARGUMENT` (the client sends those to V1). Terminated Sandboxes read back
as `GENERIC_STATUS_TERMINATED` (the client's return code 137).

A Sandbox created with `include_oidc_identity_token` gets `MODAL_IDENTITY_TOKEN` once scheduled: an
RS256 JWT with the claims modal.com/docs/guide/oidc-integration shows (issuer `https://oidc.modal.com`,
audience `oidc.modal.com`, `app_id`, `container_id` = its task id, also in `sub`), signed with this
fake's key, which an HTTP server beside it publishes through a discovery document (`oidc_url`).

A create answers before its Sandbox runs, as Modal's does: the Sandbox has no task (the pending
state: `SandboxGetTaskId` answers none) until Modal schedules it, "~1 s" on
(modal.com/docs/guide/cold-start), here `start_seconds` after the create, or when a test releases
the starts it holds (`hold_starts`). With `auto_start=False` a test moves each Sandbox itself
(`set_state`), as it may any Sandbox (which then stops following the timer).

With `bot_command`, a scheduled Sandbox runs a real process (as tests/replicas/fly_bots.py does for
Fly) whose environment is only what a container of the image gets: the image's own (`IMAGE_PATH`
and `image_env`), the create's secrets, then the variables Modal's runtime sets and reserves
(modal.com/docs/guide/environment_variables: `MODAL_TASK_ID`, `MODAL_IMAGE_ID`, `MODAL_REGION`,
`MODAL_CLOUD_PROVIDER`, and `MODAL_IDENTITY_TOKEN` for an OIDC Sandbox); never the test's own
environment. Its exit is the Sandbox's result, and a terminate kills it. A create the client
stopped waiting for still lands (a held one, once released).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import signal
import string
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import empty_pb2
from grpclib import GRPCError
from grpclib.const import Status
from grpclib.server import Server, Stream
from modal._utils.grpc_utils import CustomProtoStatusDetailsCodec
from modal_proto import api_pb2
from modal_proto.api_grpc import ModalClientBase

from tests.fakes.server import IMAGE_PATH, FakeServer, Hold
from tests.fakes.signing import SigningKey
from tests.support.ports import free_port

TOKEN_ID = "ak-voicefleet-test"
TOKEN_SECRET = "as-voicefleet-test-secret"  # noqa: S105 - a test credential
APP_NAME = "voicefleet-bots"
IMAGE_ID = "im-voicefleetbot0000000000"
# modal.com/docs/guide/gpu: the values `gpu=` takes (`:n` adds a count).
GPU_TYPES = ("T4", "L4", "A10", "A10G", "L40S", "A100", "A100-40GB", "A100-80GB", "RTX-PRO-6000",
             "H100", "H100!", "H200", "B200", "B200+")
MAX_TIMEOUT_SECONDS = 24 * 3600
_V1_ALPHABET = string.ascii_letters + string.digits
TERMINATED = api_pb2.GenericResult.GENERIC_STATUS_TERMINATED
WORKSPACE_ID = "ac-voicefleettest000000"
ENVIRONMENT_NAME = "main"
IDENTITY_TOKEN_SECONDS = 48 * 3600  # the lifetime of the example token modal.com's guide shows
START_SECONDS = 0.2  # from a create to its Sandbox's task: Modal's is "~1 s"; any wait shows the pending state


@dataclass
class FakeSandbox:
    id: str
    app_id: str
    name: str
    tags: dict[str, str]
    env: dict[str, str]
    gpu: str
    timeout_secs: int
    args: list[str]
    image_id: str = IMAGE_ID
    created_at: float = field(default_factory=time.time)
    task_id: str = ""  # set once scheduled (`started`)
    identity: bool = False  # created with include_oidc_identity_token
    moved: bool = False  # a test set its state: Modal's own start no longer applies
    result: api_pb2.GenericResult | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def finished(self) -> bool:
        return self.result is not None


@dataclass
class _Knob:
    rpc: str
    status: Status
    message: str
    times: int
    retry_after: float | None = None  # Modal's throttle hint: an `RPCRetryPolicy` in the error's details


class FakeModal:
    def __init__(self, *, max_running: int = 100, bot_command: list[str] | None = None,
                 image_env: Mapping[str, str] | None = None, auto_start: bool = True,
                 start_seconds: float = START_SECONDS) -> None:
        self.max_running = max_running
        self.bot_command = bot_command
        self.image_env = dict(image_env or {})
        self.auto_start = auto_start  # a create is scheduled `start_seconds` later; False: a test moves it
        self.start_seconds = start_seconds
        self.apps: dict[str, str] = {}  # name -> app id
        self.images = {IMAGE_ID}
        self.secrets: dict[str, dict[str, str]] = {}
        self.sandboxes: dict[str, FakeSandbox] = {}
        self.creates: list[FakeSandbox] = []  # every accepted create, in order
        self.create_calls: list[dict[str, str]] = []  # every create received (refused too): its env
        self.calls: list[str] = []
        self.unimplemented: list[str] = []
        self.auth_tokens: set[str] = set()
        self.signing_key = SigningKey()
        self._oidc: FakeServer | None = None
        self._knobs: list[_Knob] = []
        self._holds: list[Hold] = []
        self._start_holds: list[Hold] = []
        self._starting: set[asyncio.Task[None]] = set()  # Sandboxes Modal has yet to schedule
        self._in_flight = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- serving -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def oidc_url(self) -> str:
        assert self._oidc is not None
        return f"{self._oidc.url}/.well-known/openid-configuration"

    @property
    def env(self) -> dict[str, str]:
        return {"MACHINES": "modal", "MODAL_SERVER_URL": self.url, "MODAL_TOKEN_ID": TOKEN_ID,
                "MODAL_TOKEN_SECRET": TOKEN_SECRET, "MODAL_APP": APP_NAME, "MODAL_BOT_IMAGE": IMAGE_ID,
                "MODAL_OIDC_DISCOVERY_URL": self.oidc_url}

    def identity_claims(self, sandbox: FakeSandbox, task_id: str | None = None) -> dict[str, Any]:
        """The claims of the token Modal gives `sandbox` (once it has a task: `task_id`, else its own)."""
        container_id = task_id or sandbox.task_id
        now = int(time.time())
        app_name = next((name for name, app_id in self.apps.items() if app_id == sandbox.app_id), "")
        return {"sub": f"modal:workspace_id:{WORKSPACE_ID}:environment_name:{ENVIRONMENT_NAME}:app_name:{app_name}"
                       f":container_id:{container_id}",
                "aud": "oidc.modal.com", "iss": "https://oidc.modal.com", "iat": now,
                "exp": now + IDENTITY_TOKEN_SECONDS, "jti": secrets.token_hex(16), "workspace_id": WORKSPACE_ID,
                "environment_name": ENVIRONMENT_NAME, "app_id": sandbox.app_id, "app_name": app_name,
                "container_id": container_id}

    def _serve_oidc(self) -> FakeServer:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def discovery(request: Request) -> JSONResponse:
            assert self._oidc is not None
            return JSONResponse({"issuer": "https://oidc.modal.com",
                                 "jwks_uri": f"{self._oidc.url}/.well-known/jwks.json",
                                 "id_token_signing_alg_values_supported": ["RS256"]})

        async def jwks(request: Request) -> JSONResponse:
            return JSONResponse({"keys": [self.signing_key.jwk()]})

        return FakeServer(Starlette(routes=[Route("/.well-known/openid-configuration", discovery),
                                            Route("/.well-known/jwks.json", jwks)]))

    def start(self) -> FakeModal:
        self._oidc = self._serve_oidc().__enter__()
        self.port = free_port()
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            # Error details (a throttle's retry hint) as Modal's server encodes them for its client.
            self._server = Server([_service(self)], status_details_codec=CustomProtoStatusDetailsCodec())
            loop.run_until_complete(self._server.start("127.0.0.1", self.port))
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-modal", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake Modal server did not start")
        return self

    def close(self) -> None:
        self.reset_knobs()
        for sandbox in list(self.sandboxes.values()):
            self._kill(sandbox)
        if self._loop is not None and self._server is not None:
            for task in list(self._starting):
                self._loop.call_soon_threadsafe(task.cancel)
            self._loop.call_soon_threadsafe(self._server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        if self._oidc is not None:
            self._oidc.__exit__(None, None, None)

    # -- knobs ---------------------------------------------------------------------------------
    def fail(self, rpc: str, status: Status, message: str = "", *, times: int = 1,
             retry_after: float | None = None) -> None:
        """The next `times` calls of `rpc` (V1 or V2 alike: "SandboxCreate") answer `status`; with
        `retry_after`, carrying Modal's retry hint, which the client waits out and retries on its own
        (modal/_utils/grpc_utils.py `_retry_transient_errors`: "Server side instruction for retries")."""
        with self._lock:
            self._knobs.append(_Knob(rpc, status, message or status.name, times, retry_after))

    def hold_creates(self, times: int) -> Hold:
        """Hold the next `times` creates until `release()`, then serve them."""
        hold = Hold(times=times)
        with self._lock:
            self._holds.append(hold)
        return hold

    def hold_starts(self, times: int) -> Hold:
        """Keep the next `times` created Sandboxes pending (no task) until `release()`."""
        hold = Hold(times=times)
        with self._lock:
            self._start_holds.append(hold)
        return hold

    def reset_knobs(self) -> None:
        with self._lock:
            self._knobs.clear()
            for hold in [*self._holds, *self._start_holds]:
                hold.release()
            self._holds.clear()
            self._start_holds.clear()

    def in_flight(self) -> int:
        return self._in_flight

    def by_name(self, name: str) -> FakeSandbox:
        found = [s for s in self.sandboxes.values() if s.name == name]
        return max(found, key=lambda s: s.created_at)

    def set_state(self, name: str, state: str, *, exit_code: int = 0) -> None:
        """"starting" (not scheduled), "started" (scheduled, running), "ended" (exit `exit_code`)."""
        sandbox = self.by_name(name)
        sandbox.moved = True
        if state == "starting":
            sandbox.task_id, sandbox.result = "", None
        elif state == "started":
            self._schedule(sandbox)
        else:
            self._finish(sandbox, api_pb2.GenericResult(
                status=api_pb2.GenericResult.GENERIC_STATUS_SUCCESS if exit_code == 0
                else api_pb2.GenericResult.GENERIC_STATUS_FAILURE, exitcode=exit_code))

    def running(self) -> list[FakeSandbox]:
        return [s for s in self.sandboxes.values() if not s.finished]

    # -- sandboxes -----------------------------------------------------------------------------
    async def _start_later(self, sandbox: FakeSandbox) -> None:
        """Modal schedules a created Sandbox a little later (on the server's loop), or once a held start is released."""
        await asyncio.sleep(self.start_seconds)
        with self._lock:
            hold = next((h for h in self._start_holds if h.times > 0), None)
            if hold is not None:
                hold.times -= 1
                hold.caught += 1
        if hold is not None:
            await hold.until_released()
        if not sandbox.moved:
            self._schedule(sandbox)

    def _schedule(self, sandbox: FakeSandbox) -> None:
        if sandbox.task_id or sandbox.finished:
            return
        task_id = "ta-" + secrets.token_hex(11) + ("V" if not _is_v1(sandbox.id) else "")
        if sandbox.identity:  # Modal's token names the container: given once it has one
            sandbox.env["MODAL_IDENTITY_TOKEN"] = self.signing_key.sign(self.identity_claims(sandbox, task_id))
        # Last: a test (another thread) takes the task id as "scheduled" and reads the token at once.
        sandbox.task_id = task_id
        if self.bot_command:
            sandbox.process = subprocess.Popen(self.bot_command, env=self.container_env(sandbox),
                                               start_new_session=True)
            threading.Thread(target=self._watch, args=(sandbox,), daemon=True).start()

    def container_env(self, sandbox: FakeSandbox) -> dict[str, str]:
        """What the Sandbox's process sees: the image's env, the create's secrets, then Modal's reserved ones."""
        runtime = {"MODAL_TASK_ID": sandbox.task_id, "MODAL_IMAGE_ID": sandbox.image_id, "MODAL_REGION": "us-east-1",
                   "MODAL_CLOUD_PROVIDER": "CLOUD_PROVIDER_AWS"}
        return {**IMAGE_PATH, **self.image_env, **sandbox.env, **runtime}

    def _watch(self, sandbox: FakeSandbox) -> None:
        assert sandbox.process is not None
        code = sandbox.process.wait()
        if not sandbox.finished:
            self._finish(sandbox, api_pb2.GenericResult(
                status=api_pb2.GenericResult.GENERIC_STATUS_SUCCESS if code == 0
                else api_pb2.GenericResult.GENERIC_STATUS_FAILURE, exitcode=code if code >= 0 else 128 - code))

    def _finish(self, sandbox: FakeSandbox, result: api_pb2.GenericResult) -> None:
        if sandbox.finished:
            return
        sandbox.result = result
        self._kill(sandbox)

    def _kill(self, sandbox: FakeSandbox) -> None:
        process = sandbox.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def terminate(self, sandbox: FakeSandbox) -> None:
        self._finish(sandbox, api_pb2.GenericResult(status=TERMINATED, exception="Sandbox terminated"))

    # -- the RPCs' bodies (run on the server's loop) --------------------------------------------
    def _check(self, rpc: str, stream: Stream[Any, Any], request: Any, *, v2: bool = False) -> None:
        metadata: Any = stream.metadata or {}
        if metadata.get("x-modal-token-id") != TOKEN_ID or metadata.get("x-modal-token-secret") != TOKEN_SECRET:
            raise GRPCError(Status.UNAUTHENTICATED, "Invalid token id or secret")
        if v2 and metadata.get("x-modal-auth-token") not in self.auth_tokens:
            raise GRPCError(Status.UNAUTHENTICATED, "missing or invalid auth token")
        if rpc.startswith("SandboxCreate"):
            self.create_calls.append(self._env(request))
        with self._lock:
            for knob in self._knobs:
                if knob.rpc == rpc.removesuffix("V2") and knob.times > 0:
                    knob.times -= 1
                    hint = None if knob.retry_after is None else [
                        api_pb2.RPCRetryPolicy(retry_after_secs=knob.retry_after)]
                    raise GRPCError(knob.status, knob.message, hint)

    def _app_id(self, name: str) -> str:
        if name not in self.apps:
            self.apps[name] = "ap-" + secrets.token_hex(11)
        return self.apps[name]

    def create(self, request: Any, *, v2: bool) -> FakeSandbox:
        d = request.definition
        gpu = d.resources.gpu_config.gpu_type
        if request.app_id not in self.apps.values():
            raise GRPCError(Status.NOT_FOUND, f"App {request.app_id} not found")
        if d.image_id not in self.images:
            raise GRPCError(Status.NOT_FOUND, f"Image {d.image_id} not found")
        if gpu and gpu not in GPU_TYPES:
            raise GRPCError(Status.INVALID_ARGUMENT, f"{gpu} is not a valid GPU type")
        if gpu and v2:
            raise GRPCError(Status.INVALID_ARGUMENT, "GPUs are not supported by V2 Sandboxes")
        if d.timeout_secs > MAX_TIMEOUT_SECONDS or d.idle_timeout_secs > MAX_TIMEOUT_SECONDS:
            raise GRPCError(Status.INVALID_ARGUMENT, "Sandbox timeout must be at most 24 hours")
        if d.name and any(s.name == d.name and s.app_id == request.app_id for s in self.running()):
            raise GRPCError(Status.ALREADY_EXISTS, f"Sandbox with name {d.name!r} already exists")
        if len(self.running()) >= self.max_running:
            raise GRPCError(Status.RESOURCE_EXHAUSTED, f"Concurrent Sandbox limit of {self.max_running} reached")
        env = self._env(request)
        sandbox_id = "sb-" + ("".join(secrets.choice(_V1_ALPHABET) for _ in range(22)) if not v2
                              else "v2" + secrets.token_hex(12))
        sandbox = FakeSandbox(sandbox_id, request.app_id, d.name, {t.tag_name: t.tag_value for t in request.tags},
                              env, gpu, d.timeout_secs, list(d.entrypoint_args), image_id=d.image_id,
                              identity=d.include_oidc_identity_token)
        self.sandboxes[sandbox_id] = sandbox
        self.creates.append(sandbox)
        if self.auto_start:  # answered pending: Modal schedules it later
            task = asyncio.get_running_loop().create_task(self._start_later(sandbox))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)
        return sandbox

    def _env(self, request: Any) -> dict[str, str]:
        """A create's environment: its Secrets' values (V1: by id; V2: ids or inline)."""
        env: dict[str, str] = {}
        for secret_id in request.definition.secret_ids:
            env |= self.secrets.get(secret_id, {})
        for source in getattr(request, "secret_sources", ()):
            env |= self.secrets.get(source.secret_id, {}) if source.secret_id else dict(source.env.contents)
        return env

    def sandbox(self, sandbox_id: str) -> FakeSandbox:
        if sandbox_id not in self.sandboxes:
            raise GRPCError(Status.NOT_FOUND, f"Sandbox {sandbox_id} not found")
        return self.sandboxes[sandbox_id]

    def info(self, sandbox: FakeSandbox) -> api_pb2.SandboxInfo:
        return api_pb2.SandboxInfo(
            id=sandbox.id, created_at=sandbox.created_at, app_id=sandbox.app_id, name=sandbox.name,
            tags=[api_pb2.SandboxTag(tag_name=k, tag_value=v) for k, v in sandbox.tags.items()],
            task_info=api_pb2.TaskInfo(id=sandbox.task_id, result=sandbox.result),
            metadata=self.metadata(sandbox))

    def metadata(self, sandbox: FakeSandbox) -> api_pb2.SandboxHandleMetadata:
        return api_pb2.SandboxHandleMetadata(app_id=sandbox.app_id, result=sandbox.result)

    async def held(self) -> None:
        with self._lock:
            hold = next((h for h in self._holds if h.times > 0), None)
            if hold is None:
                return
            hold.times -= 1
            hold.caught += 1
        await hold.until_released()


def _is_v1(sandbox_id: str) -> bool:
    return not sandbox_id.startswith("sb-v2")


def _jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


def _service(fake: FakeModal) -> ModalClientBase:
    """The handler: the RPCs above, every other abstract method of the service UNIMPLEMENTED."""

    def rpc(name: str, *, v2: bool = False) -> Callable[..., Any]:
        def wrap(body: Callable[[Any], Any]) -> Callable[..., Any]:
            async def handler(self: Any, stream: Stream[Any, Any]) -> None:
                request = await stream.recv_message()
                fake.calls.append(name)
                fake._in_flight += 1
                try:
                    fake._check(name, stream, request, v2=v2)
                    response = body(request)
                    if asyncio.iscoroutine(response):
                        response = await response
                    await stream.send_message(response)
                finally:
                    fake._in_flight -= 1
            return handler
        return wrap

    async def landed(request: Any, v2: bool) -> FakeSandbox:
        fake._in_flight += 1
        try:
            await fake.held()
            return fake.create(request, v2=v2)
        finally:
            fake._in_flight -= 1

    async def create(request: Any, v2: bool) -> Any:
        # Shielded: a create the server accepted lands even when its client gave up waiting (a
        # cancelled RPC is not an undone one), as the real control plane's would.
        task = asyncio.ensure_future(landed(request, v2))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # a refusal nobody waits for
        sandbox = await asyncio.shield(task)
        if v2:
            return api_pb2.SandboxCreateV2Response(sandbox_id=sandbox.id, task_id=sandbox.task_id,
                                                   metadata=fake.metadata(sandbox))
        return api_pb2.SandboxCreateResponse(sandbox_id=sandbox.id, metadata=fake.metadata(sandbox))

    def from_name(request: Any) -> Any:
        app_id = fake.apps.get(request.app_name)
        named = [s for s in fake.sandboxes.values() if s.app_id == app_id and s.name == request.sandbox_name]
        running = [s for s in named if not s.finished]
        found = running or (named if request.include_terminated else [])
        if not found:
            raise GRPCError(Status.NOT_FOUND, f"Sandbox {request.sandbox_name!r} not found")
        sandbox = max(found, key=lambda s: s.created_at)
        return api_pb2.SandboxGetFromNameResponse(sandbox_id=sandbox.id, metadata=fake.metadata(sandbox))

    async def wait(request: Any) -> Any:
        sandbox = fake.sandbox(request.sandbox_id)
        deadline = time.monotonic() + min(request.timeout, 10.0)
        while not sandbox.finished and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return api_pb2.SandboxWaitResponse(result=sandbox.result, metadata=fake.metadata(sandbox))

    def task_id(request: Any) -> Any:
        sandbox = fake.sandbox(request.sandbox_id)
        if sandbox.finished:
            return api_pb2.SandboxGetTaskIdResponse(task_result=sandbox.result)
        return api_pb2.SandboxGetTaskIdResponse(task_id=sandbox.task_id)

    def tags_get(request: Any) -> Any:
        sandbox = fake.sandbox(request.sandbox_id)
        return api_pb2.SandboxTagsGetResponse(
            tags=[api_pb2.SandboxTag(tag_name=k, tag_value=v) for k, v in sandbox.tags.items()])

    def tags_set(request: Any) -> Any:
        fake.sandbox(request.sandbox_id).tags = {t.tag_name: t.tag_value for t in request.tags}
        return empty_pb2.Empty()

    def terminate(request: Any) -> Any:
        fake.terminate(fake.sandbox(request.sandbox_id))
        return api_pb2.SandboxTerminateResponse()

    def list_page(request: Any) -> Any:
        wanted = {t.tag_name: t.tag_value for t in request.tags}
        found = sorted((s for s in fake.sandboxes.values()
                        if (not request.app_id or s.app_id == request.app_id)
                        and (request.include_finished or not s.finished)
                        and (not request.before_timestamp or s.created_at < request.before_timestamp)
                        and wanted.items() <= s.tags.items()), key=lambda s: -s.created_at)
        return api_pb2.SandboxListResponse(sandboxes=[fake.info(s) for s in found[:100]])

    def auth_token(request: Any) -> Any:
        token = _jwt({"exp": int(time.time()) + 3600, "jti": secrets.token_hex(8)})
        fake.auth_tokens.add(token)
        return api_pb2.AuthTokenGetResponse(token=token)

    def app_get_or_create(request: Any) -> Any:
        return api_pb2.AppGetOrCreateResponse(app_id=fake._app_id(request.app_name))

    def image_from_id(request: Any) -> Any:
        if request.image_id not in fake.images:
            raise GRPCError(Status.NOT_FOUND, f"Image {request.image_id} not found")
        return api_pb2.ImageFromIdResponse(image_id=request.image_id, metadata=api_pb2.ImageMetadata())

    def secret_get_or_create(request: Any) -> Any:
        secret_id = "st-" + secrets.token_hex(11)
        fake.secrets[secret_id] = dict(request.env_dict)
        return api_pb2.SecretGetOrCreateResponse(secret_id=secret_id)

    bodies: dict[str, Callable[[Any], Any]] = {
        "ClientHello": lambda request: api_pb2.ClientHelloResponse(),
        "AuthTokenGet": auth_token,
        "AppGetOrCreate": app_get_or_create,
        "ImageFromId": image_from_id,
        "SecretGetOrCreate": secret_get_or_create,
        "SandboxCreate": lambda request: create(request, False),
    }
    v2_bodies: dict[str, Callable[[Any], Any]] = {
        "SandboxCreateV2": lambda request: create(request, True),
        "SandboxGetFromName": from_name, "SandboxWait": wait, "SandboxGetTaskId": task_id,
        "SandboxTagsGet": tags_get, "SandboxTagsSet": tags_set, "SandboxTerminate": terminate,
        "SandboxList": list_page,
    }
    methods: dict[str, Any] = {}
    for name, body in bodies.items():
        methods[name] = rpc(name)(body)
    for name, body in v2_bodies.items():
        methods[name] = rpc(name, v2=name.endswith("V2"))(body)  # V1 (GPU Sandboxes) and V2 alike
        if not name.endswith("V2"):
            methods[f"{name}V2"] = rpc(f"{name}V2", v2=True)(body)

    def unimplemented(name: str) -> Callable[..., Any]:
        async def handler(self: Any, stream: Stream[Any, Any]) -> None:
            fake.unimplemented.append(name)
            raise GRPCError(Status.UNIMPLEMENTED, f"{name} is not served by the fake")
        return handler

    for name in ModalClientBase.__abstractmethods__:
        methods.setdefault(name, unimplemented(name))
    service: type[ModalClientBase] = type("FakeModalService", (ModalClientBase,), methods)
    return service()
