"""A fake Fly Machines API (https://fly.io/docs/machines/api/machines-resource/), the parts we use.

Create (`name` unique among live machines: 409 on reuse), get, list (`metadata.<key>=` filters,
`include_deleted`), `/wait?state=&timeout=` (blocks, 408 at the timeout), stop (then destroyed when
`auto_destroy`), delete (412 for a running machine unless `force`), bearer auth. Machines stay in
`created` until a test moves them (`set_state`) or `boot_after` seconds pass. A destroyed machine
is listed (with `include_deleted`) and readable for `destroyed_ttl` seconds, then answers 404 as
the real API's do once they age out (None: never; 0: at once). `machines` keeps every record
for the tests to inspect.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import FakeApi

API_TOKEN = "test-fly-token"
APP = "voicefleet-bots"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class FakeFly(FakeApi):
    error_body = staticmethod(lambda status: {"error": f"injected HTTP {status}"})

    def __init__(self, token: str = API_TOKEN, app: str = APP) -> None:
        super().__init__()
        self.token = token
        self.app_name = app
        self.machines: dict[str, dict[str, Any]] = {}
        self.boot_after: float | None = None  # seconds after create at which a machine is `started`
        self.destroyed_ttl: float | None = None  # seconds a destroyed machine stays visible
        self._ids = itertools.count(1)
        # Fly's documented limit: 1 request/s per action per machine, burst 3 (metadata writes here).
        self._metadata_writes: dict[str, list[float]] = {}

    @property
    def env(self) -> dict[str, str]:
        """What points the `fly` provider at this fake (add test-specific knobs on top)."""
        return {
            "FLY_API_TOKEN": self.token,
            "FLY_APP": self.app_name,
            "FLY_API_HOST": self.url,
            "BOT_IMAGE": "registry.fly.io/voicefleet-bots@sha256:" + "a" * 64,
        }

    def routes(self) -> list[Route]:
        base = f"/v1/apps/{self.app_name}/machines"
        return [
            Route(base, self.create, methods=["POST"]),
            Route(base, self.list_machines, methods=["GET"]),
            Route(base + "/{id}", self.get, methods=["GET"]),
            Route(base + "/{id}", self.delete, methods=["DELETE"]),
            Route(base + "/{id}/wait", self.wait, methods=["GET"]),
            Route(base + "/{id}/stop", self.stop, methods=["POST"]),
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
        return {k: v for k, v in machine.items() if not k.startswith("_")}

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, "unauthorized")
        return None

    async def create(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        body = await request.json()
        config = body.get("config") or {}
        if not config.get("image"):
            return _error(422, "config.image is required")
        name = body.get("name") or f"gen-{next(self._ids)}"
        for other in self.machines.values():
            if other["name"] == name and other["state"] != "destroyed":
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
        }
        self.machines[machine_id] = machine
        return JSONResponse(self._tick(machine))

    async def list_machines(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        include_deleted = request.query_params.get("include_deleted") == "true"
        wanted = {k[len("metadata.") :]: v for k, v in request.query_params.items() if k.startswith("metadata.")}
        out = []
        for machine in self.machines.values():
            if (machine["state"] == "destroyed" and not include_deleted) or not self._visible(machine):
                continue
            metadata = machine["config"].get("metadata") or {}
            if all(metadata.get(k) == v for k, v in wanted.items()):
                out.append(self._tick(machine))
        return JSONResponse(out)

    def _machine(self, request: Request) -> dict[str, Any] | None:
        machine = self.machines.get(request.path_params["id"])
        return machine if machine is not None and self._visible(machine) else None

    async def get(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        machine = self._machine(request)
        return _error(404, "machine not found") if machine is None else JSONResponse(self._tick(machine))

    async def wait(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        machine = self._machine(request)
        if machine is None:
            return _error(404, "machine not found")
        state = request.query_params.get("state", "started")
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
        now = time.monotonic()
        recent = [t for t in self._metadata_writes.get(machine["id"], []) if now - t < 3.0]
        if len(recent) >= 3:  # the burst is spent; it refills at 1/s
            return _error(429, "rate limit exceeded for this machine")
        self._metadata_writes[machine["id"]] = [*recent, now]
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            return _error(400, "expected {\"value\": string}")
        machine["config"].setdefault("metadata", {})[request.path_params["key"]] = body["value"]
        return Response(status_code=204)
