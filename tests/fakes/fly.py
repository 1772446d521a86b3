"""A fake Fly Machines API (https://fly.io/docs/machines/api/machines-resource/), the parts we use.

Create (`name` unique among live machines: 409 on reuse), get, list (`metadata.<key>=` filters,
`include_deleted`), `/wait?state=&timeout=` (blocks, 408 at the timeout), stop (then destroyed when
`auto_destroy`), delete (412 for a running machine unless `force`), bearer auth.

Suspend and resume (https://fly.io/docs/reference/suspend-resume/): `POST …/suspend` takes a
`started` machine through `suspending` to `suspended` (`suspend_seconds`), and only one that meets
the documented requirements: at most 2 GB of memory, no swap, no schedule (400 otherwise; Fly calls
bigger ones "discouraged", this fake refuses them, never more lenient). `POST …/start` resumes a
suspended machine (`starting`, then `started` after `resume_seconds`) or boots a stopped one; any
other state is 412. Stopping a suspended machine discards its snapshot. Per-machine actions
(suspend, start, stop, metadata writes, wait) keep Fly's limit of 1 request/s per action per
machine, burst 3, and Get Machine its own, 5 requests/s, burst 10 (429). `on_suspend`/`on_resume`
let a test pause and continue the process it runs for a machine (tests/replicas/fly_bots.py:
SIGSTOP/SIGCONT), as a snapshot keeps the process. Machines stay in `created` until a test moves
them (`set_state`) or `boot_after` seconds pass. A destroyed machine is listed (with
`include_deleted`) and readable for `destroyed_ttl` seconds, then answers 404 as the real API's do
once they age out (None: never; 0: at once). `machines` keeps every record for the tests to inspect.

Images: a create runs only an image its registry holds (`registry`: the deployment's `BOT_IMAGE`
to begin with; a test adds a release's). Another is refused as Fly refuses a create it cannot
launch, a 422 whose `error` quotes the reference: Fly documents no wording or code for it, so the
provider may rely on no more than a 4xx naming the image (dispatcher/machines/fly/provider.py).

Several apps (`other_apps`, a deployment that spreads its creates over apps): each serves its own
`/v1/apps/<app>/machines`, a machine belongs to the app it was created in (another app's path
answers 404 for it, as Fly's does), and its OIDC token names that app. Creates and lists keep Fly's
app-wide limit (https://fly.io/docs/machines/api/working-with-machines-api/#rate-limits: 1
request/s per action, burst 3, scoped to the app for create and list): a token bucket per action
per app (`create_per_second`/`create_burst`, `list_per_second`/`list_burst`), past which the call
answers 429 and is not queued. A call is counted as it arrives, before a test's hold or delay: a
create Fly admitted and that then hangs lands, whatever came meanwhile. `refused_creates` and
`refused_lists` count the refused, `create_times` and `list_times` hold each accepted one's time.
A test that measures something else may lift a limit (a higher `…_per_second`), and says why.

Machine OIDC tokens (https://fly.io/docs/reference/openid-connect/): `machine_socket(id, dir)`
opens that machine's `/.fly/api` (tests/fakes/machine_socket.py), whose `POST /v1/tokens/oidc`
answers an RS256 JWT for the asked `aud`, issued by the organisation's issuer (here served at
`<url>/oidc/<org>`, keys at `<issuer>/.well-known/jwks`), with the documented claims (`app_name`,
`machine_id`, `machine_name`, `org_name`, `sub` `<org>:<app>:<machine name>`, `iat`/`nbf`/`exp` 10
minutes apart, …); only for a `started` machine (a machine that is not running runs no bot to ask).
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.machine_socket import MachineSocket
from tests.fakes.server import FakeApi
from tests.fakes.signing import SigningKey

API_TOKEN = "test-fly-token"
APP = "voicefleet-bots"
ORG = "voicefleet-test-org"
CHANNEL_AUDIENCE = "wss://dispatcher.example/bots/channel"  # the URL the test deployment's bots dial
BOT_IMAGE = "registry.fly.io/voicefleet-bots@sha256:" + "a" * 64


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class FakeFly(FakeApi):
    error_body = staticmethod(lambda status: {"error": f"injected HTTP {status}"})

    def __init__(self, token: str = API_TOKEN, app: str = APP, other_apps: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.token = token
        self.app_name = app
        self.apps = (app, *other_apps)
        self.machines: dict[str, dict[str, Any]] = {}
        self.registry: set[str] = {BOT_IMAGE}  # the images a create may run
        self.boot_after: float | None = None  # seconds after create at which a machine is `started`
        self.destroyed_ttl: float | None = None  # seconds a destroyed machine stays visible
        self._ids = itertools.count(1)
        self.signing_key = SigningKey()
        self.sockets: dict[str, MachineSocket] = {}  # machine id → its API socket
        self._socket_dir: str | None = None
        self.token_requests: list[tuple[str, str]] = []  # (machine id, aud) asked through machine sockets
        self.on_suspend: Callable[[dict[str, Any]], None] | None = None  # the machine's process pauses
        self.on_resume: Callable[[dict[str, Any]], None] | None = None  # …and continues where it was
        self.suspend_seconds = 0.0  # `suspending` → `suspended`
        self.resume_seconds = 0.0  # a resumed machine's `starting` → `started`
        # Fly's documented limit: 1 request/s per action per machine, burst 3.
        self._actions: dict[tuple[str, str], list[float]] = {}
        # Fly's app-wide create limit: 1 create/s, burst 3 (lifted only by a test of something else).
        self.create_per_second = 1.0
        self.create_burst = 3
        self.refused_creates = 0
        self.create_times: list[float] = []  # monotonic, each accepted create
        # … and its app-wide list limit, the same 1/s, burst 3 (lifted only by a test of something else).
        self.list_per_second = 1.0
        self.list_burst = 3
        self.refused_lists = 0
        self.list_times: list[float] = []  # monotonic, each accepted list
        self._app_tokens: dict[tuple[str, str], tuple[float, float]] = {}  # (action, app) → (tokens, when counted)

    @property
    def env(self) -> dict[str, str]:
        """What points the `fly` provider at this fake (add test-specific knobs on top)."""
        return {
            "FLY_API_TOKEN": self.token,
            "FLY_APP": self.app_name,
            **({"FLY_APPS": ",".join(self.apps)} if len(self.apps) > 1 else {}),
            "FLY_API_HOST": self.url,
            "BOT_IMAGE": BOT_IMAGE,
            "FLY_OIDC_ISSUER": self.issuer,
            "BOT_IDENTITY_AUDIENCE": CHANNEL_AUDIENCE,
        }

    @property
    def issuer(self) -> str:
        """The organisation's OIDC issuer (Fly's is `https://oidc.fly.io/<org>`)."""
        return f"{self.url}/oidc/{ORG}"

    def machine_socket(self, machine_id: str) -> str:
        """Opens machine `machine_id`'s API socket; its path (what that machine's bot is given). In a
        short directory of the fake's own: a Unix socket's path has at most 107 bytes."""
        if machine_id in self.sockets:
            return self.sockets[machine_id].path
        if self._socket_dir is None:
            self._socket_dir = tempfile.mkdtemp(prefix="fly-")

        def mint(audience: str) -> tuple[int, str]:
            machine = self.machines.get(machine_id)
            if machine is None or machine["state"] != "started":
                return 409, "machine not started"
            self.token_requests.append((machine_id, audience))
            return 200, self.oidc_token(machine_id, audience)

        socket = MachineSocket(f"{self._socket_dir}/{machine_id}.sock", mint)
        self.sockets[machine_id] = socket
        return socket.path

    def oidc_token(self, machine_id: str, audience: str, *, issued: float | None = None) -> str:
        """What machine `machine_id`'s socket answers (tests mint expired ones with `issued`)."""
        machine = self.machines[machine_id]
        now = int(time.time() if issued is None else issued)
        return self.signing_key.sign({
            "app_id": "1234567", "app_name": machine["_app"], "aud": audience, "exp": now + 600, "iat": now,
            "image": machine["config"].get("image", ""), "image_digest": "sha256:" + "a" * 64, "iss": self.issuer,
            "jti": str(uuid.uuid4()), "machine_id": machine_id, "machine_name": machine["name"],
            "machine_version": "01HTGGC1TZ2JHK83J4AC0R3VET", "nbf": now, "org_id": "7654321", "org_name": ORG,
            "region": machine["region"], "sub": f"{ORG}:{machine['_app']}:{machine['name']}",
        })

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.signing_key.jwk()]})

    def close(self) -> None:
        for socket in self.sockets.values():
            socket.close()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    def routes(self) -> list[Route]:
        base = "/v1/apps/{app}/machines"
        return [
            Route(base, self.create, methods=["POST"]),
            Route(f"/oidc/{ORG}/.well-known/jwks", self.jwks, methods=["GET"]),
            Route(base, self.list_machines, methods=["GET"]),
            Route(base + "/{id}", self.get, methods=["GET"]),
            Route(base + "/{id}", self.delete, methods=["DELETE"]),
            Route(base + "/{id}/wait", self.wait, methods=["GET"]),
            Route(base + "/{id}/stop", self.stop, methods=["POST"]),
            Route(base + "/{id}/suspend", self.suspend, methods=["POST"]),
            Route(base + "/{id}/start", self.start, methods=["POST"]),
            Route(base + "/{id}/metadata/{key}", self.set_metadata, methods=["POST"]),
        ]

    # knobs ---------------------------------------------------------------------------------

    def by_name(self, name: str) -> dict[str, Any]:
        return next(m for m in self.machines.values() if m["name"] == name and m["state"] != "destroyed")

    def set_state(self, name: str, state: str, *, exit_code: int | None = None) -> None:
        machine = self.by_name(name)
        self._set(machine, state)
        if exit_code is not None:
            event = {"type": "exit", "status": state, "timestamp": int(time.time() * 1000)}
            event["request"] = {"exit_event": {"exit_code": exit_code}}
            machine["events"].append(event)

    def _set(self, machine: dict[str, Any], state: str) -> None:
        machine["state"] = state
        machine["_changed"] = time.monotonic()
        if state == "destroyed":
            machine["_destroyed"] = time.monotonic()

    def _visible(self, machine: dict[str, Any]) -> bool:
        if machine["state"] != "destroyed" or self.destroyed_ttl is None:
            return True
        return time.monotonic() - machine["_destroyed"] < self.destroyed_ttl

    # endpoints -----------------------------------------------------------------------------

    def _tick(self, machine: dict[str, Any]) -> dict[str, Any]:
        if self.boot_after is not None and machine["state"] == "created":
            if time.monotonic() - machine["_created"] >= self.boot_after:
                machine["state"] = "started"
        since = time.monotonic() - machine.get("_changed", 0.0)
        if machine["state"] == "suspending" and since >= self.suspend_seconds:
            machine["state"] = "suspended"
        elif machine["state"] == "starting" and since >= self.resume_seconds:
            machine["state"] = "started"
        return {k: v for k, v in machine.items() if not k.startswith("_")}

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, "unauthorized")
        return None

    def _app_allowed(self, action: str, app: str, per_second: float, burst: int) -> bool:
        """The app's bucket for `action`: a token if one is there (none is borrowed: past it, 429)."""
        now = time.monotonic()
        tokens, counted = self._app_tokens.get((action, app), (float(burst), now))
        tokens = min(float(burst), tokens + (now - counted) * per_second)
        if tokens < 1.0:
            self._app_tokens[action, app] = (tokens, now)
            return False
        self._app_tokens[action, app] = (tokens - 1.0, now)
        return True

    def _create_allowed(self, app: str) -> bool:
        if not self._app_allowed("create", app, self.create_per_second, self.create_burst):
            self.refused_creates += 1
            return False
        self.create_times.append(time.monotonic())
        return True

    def _list_allowed(self, app: str) -> bool:
        if not self._app_allowed("list", app, self.list_per_second, self.list_burst):
            self.refused_lists += 1
            return False
        self.list_times.append(time.monotonic())
        return True

    def admit(self, request: Request) -> Response | None:
        """Fly's app-wide create and list limits, counted as the call arrives: a create Fly admitted
        and that then hangs (a test's hold) is served when it lands, however many came meanwhile.
        A call the endpoint refuses anyway (no token, no such app) is left to it."""
        app = request.path_params.get("app")
        if app not in self.apps or "id" in request.path_params or self._denied(request):
            return None
        if request.method == "POST" and not self._create_allowed(app):
            return _error(429, "rate limit exceeded for create on this app")
        if request.method == "GET" and not self._list_allowed(app):
            return _error(429, "rate limit exceeded for list on this app")
        return None

    async def create(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        app = request.path_params["app"]
        if app not in self.apps:
            return _error(404, f"app {app} not found")
        body = await request.json()
        config = body.get("config") or {}
        if not config.get("image"):
            return _error(422, "config.image is required")
        if config["image"] not in self.registry:
            return _error(422, f"failed to launch VM: image {config['image']!r} not found")
        name = body.get("name") or f"gen-{next(self._ids)}"
        for other in self.machines.values():
            if other["name"] == name and other["state"] != "destroyed" and other.get("_app", self.app_name) == app:
                return _error(409, f"already_exists: machine {other['id']} has name {name}")
        machine_id = f"m{next(self._ids):012x}"
        machine = {
            "id": machine_id,
            "name": name,
            "state": "created",
            "region": body.get("region") or "iad",
            "instance_id": f"i-{machine_id}",
            "config": config,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "events": [],
            "_created": time.monotonic(),
            "_app": app,
        }
        self.machines[machine_id] = machine
        return JSONResponse(self._tick(machine))

    async def list_machines(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        app = request.path_params["app"]
        if app not in self.apps:
            return _error(404, f"app {app} not found")
        include_deleted = request.query_params.get("include_deleted") == "true"
        wanted = {k[len("metadata.") :]: v for k, v in request.query_params.items() if k.startswith("metadata.")}
        out = []
        for machine in self.machines.values():
            if machine.get("_app", self.app_name) != app:
                continue
            if (machine["state"] == "destroyed" and not include_deleted) or not self._visible(machine):
                continue
            metadata = machine["config"].get("metadata") or {}
            if all(metadata.get(k) == v for k, v in wanted.items()):
                out.append(self._tick(machine))
        return JSONResponse(out)

    def _machine(self, request: Request) -> dict[str, Any] | None:
        machine = self.machines.get(request.path_params["id"])
        if machine is None or machine.get("_app", self.app_name) != request.path_params["app"]:
            return None
        return machine if self._visible(machine) else None

    async def get(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        machine = self._machine(request)
        if machine is None:
            return _error(404, "machine not found")
        if limited := self._limited("get", machine, per_second=5, burst=10):
            return limited
        return JSONResponse(self._tick(machine))

    async def wait(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        machine = self._machine(request)
        if machine is None:
            return _error(404, "machine not found")
        if limited := self._limited("wait", machine):
            return limited
        state = request.query_params.get("state", "started")
        if state not in ("started", "stopped", "suspended", "destroyed"):
            return _error(400, f"invalid state {state!r}: one of started, stopped, suspended, destroyed")
        timeout = min(60, int(request.query_params.get("timeout", "60")))
        deadline = time.monotonic() + timeout
        while self._tick(machine)["state"] != state:
            if time.monotonic() >= deadline:
                return _error(408, f"deadline_exceeded: machine did not reach {state}")
            await asyncio.sleep(0.02)
        return JSONResponse({"ok": True})

    async def stop(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        machine = self._machine(request)
        if machine is None:
            return _error(404, "machine not found")
        if limited := self._limited("stop", machine):
            return limited
        self.set_state(machine["name"], "stopped", exit_code=0)
        if machine["config"].get("auto_destroy"):
            self._set(machine, "destroyed")
        return JSONResponse({"ok": True})

    async def delete(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        machine = self._machine(request)
        if machine is None:
            return _error(404, "machine not found")
        if machine["state"] == "started" and request.query_params.get("force") != "true":
            return _error(412, "machine is still running; stop it or use force=true")
        self._set(machine, "destroyed")
        return JSONResponse({"ok": True})

    async def set_metadata(self, request: Request) -> Response:
        """`POST /machines/{id}/metadata/{key}` with `{"value": …}` (flyctl's SetMetadata): 204."""
        if denied := self._denied(request):
            return denied
        machine = self._machine(request)
        if machine is None or machine["state"] == "destroyed":
            return _error(404, "machine not found")
        if limited := self._limited("metadata", machine):
            return limited
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            return _error(400, "expected {\"value\": string}")
        machine["config"].setdefault("metadata", {})[request.path_params["key"]] = body["value"]
        return Response(status_code=204)

    def _limited(self, action: str, machine: dict[str, Any], *, per_second: float = 1.0,
                 burst: int = 3) -> Response | None:
        """Fly's 1 request/s per action per machine, burst 3 (Get Machine: 5/s, burst 10): 429 once
        the burst is spent. Counted over the burst's window, never more lenient than a token bucket."""
        now = time.monotonic()
        key = (action, machine["id"])
        recent = [t for t in self._actions.get(key, []) if now - t < burst / per_second]
        if len(recent) >= burst:  # the burst is spent; it refills at `per_second`
            return _error(429, f"rate limit exceeded for {action} on this machine")
        self._actions[key] = [*recent, now]
        return None

    async def suspend(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        machine = self._machine(request)
        if machine is None or machine["state"] == "destroyed":
            return _error(404, "machine not found")
        if limited := self._limited("suspend", machine):
            return limited
        if self._tick(machine)["state"] != "started":
            return _error(412, f"failed_precondition: machine is {machine['state']}, only a started machine suspends")
        config = machine["config"]
        if (config.get("guest") or {}).get("memory_mb", 256) > 2048:
            return _error(400, "suspend requires a machine with at most 2048 MB of memory")
        if (config.get("init") or {}).get("swap_size_mb"):
            return _error(400, "suspend requires a machine without swap")
        if config.get("schedule"):
            return _error(400, "suspend is not available for scheduled machines")
        self._set(machine, "suspending")
        if self.on_suspend is not None:
            self.on_suspend(machine)
        return JSONResponse({"ok": True})

    async def start(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        machine = self._machine(request)
        if machine is None or machine["state"] == "destroyed":
            return _error(404, "machine not found")
        if limited := self._limited("start", machine):
            return limited
        previous = self._tick(machine)["state"]
        if previous not in ("created", "stopped", "suspended"):
            return _error(412, f"failed_precondition: machine is {previous}, it cannot be started")
        self._set(machine, "starting")
        if previous == "suspended" and self.on_resume is not None:
            self.on_resume(machine)
        return JSONResponse({"previous_state": previous})
