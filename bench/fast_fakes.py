"""Fast fakes of Daily, Fly, Compute Engine and ECS for load benchmarks, in a process of their own.

The test fakes (tests/fakes) are Starlette apps served by uvicorn: thorough, and ~1 ms of CPU a
call, so under a burst they, not the dispatcher, would be the bottleneck. These answer the same
calls (the parts a start uses, in the shapes the providers parse) from one raw asyncio protocol:
HTTP/1.1 keep-alive, latency injected with `call_later`, no framework. They count calls per
route, TCP connections and their own CPU, which `GET /_stats` reports; `POST /_reset?latency=`
clears them between arms; `POST /_fly/machines` makes Fly machines from a list of create bodies at
once, uncounted and without the latency (a fill's, bench/dispatcher_tier_fill.py). ECS calls are
refused unless signed as AWS requires (SigV4, checked with botocore's signer:
tests/fakes/sigv4_check.py). Run: `python -m bench.fast_fakes --port 0` (prints `port N`).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.sigv4_check import KnownKey, check

DOMAIN = {"domain_name": "voicefleet-bench", "domain_id": "30f866c3-9123-452a-8723-ff58322d09c5"}
_FLY = re.compile(r"^/v1/apps/[^/]+/machines(?:/([^/]+)(/wait|/stop)?)?$")
_GCE = re.compile(r"^/compute/v1/projects/[^/]+/zones/[^/]+/(instances|operations)(?:/([^/]+))?$")
_GCE_TEMPLATE = re.compile(r"^/compute/v1/projects/[^/]+/global/instanceTemplates/([^/]+)$")
# What the dispatcher reads of its instance template (once per process): the startup script, a label.
_TEMPLATE_PROPERTIES = {"metadata": {"items": [{"key": "startup-script", "value": "#!/bin/sh\n"}]},
                        "labels": {"voicefleet-bot": "true"}}
_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 409: "Conflict"}
Reply = tuple[int, Any]
# The dispatcher's AWS credentials in the bench: temporary ones, as a Fargate task role's are
# (their session token, ~1 kB, goes with every call). ECS calls must be signed with them.
AWS_KEY_ID, AWS_SECRET, AWS_TOKEN = "ASIABENCH", "bench-secret", "IQoJb3JpZ2luX2VjE" + "x" * 900
AWS_REGION = "eu-west-1"


class Fleet:
    """What the fakes remember: rooms, machines, instances, tasks. All boot at once (`boot` s)."""

    def __init__(self, latency: float = 0.05) -> None:
        self.reset(latency)

    def reset(self, latency: float) -> None:
        self.latency = latency
        self.calls: Counter[str] = Counter()
        self.connections = 0
        self.fly_whole_lists = 0  # Fly lists of every machine (no metadata filter): a reconcile's, a status count's
        self.rooms: set[str] = set()
        # The app's first machine: the Fly example reads its image from the app's machine list.
        runner = {"id": "runner", "name": "runner", "state": "started", "events": [],
                  "config": {"image": "registry.fly.io/bench:latest", "metadata": {}}}
        self.fly: dict[str, dict[str, Any]] = {"runner": runner}
        # Machine ids by one metadata pair: a keyed start lists by its session's, and a scan of every
        # machine (here and in a create's name check) would make the fake the cost at 100,000 machines.
        self.fly_by_metadata: dict[tuple[str, str], list[str]] = {}
        self.fly_names = {"runner"}  # every machine's name: a create's conflict check, without a scan
        self.gce: dict[str, dict[str, Any]] = {}
        self.ecs: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    # Daily ---------------------------------------------------------------------------------
    def daily(self, method: str, path: str, body: Any) -> Reply:
        if path == "/v1/" and method == "GET":
            return 200, DOMAIN
        if path == "/v1/rooms" and method == "POST":
            name = (body or {}).get("name") or f"r{next(self._ids)}"
            if name in self.rooms:
                return 400, {"error": "invalid-request-error", "info": f"a room named {name} already exists"}
            self.rooms.add(name)
            return 200, {
                "id": f"id-{name}", "name": name, "api_created": True, "privacy": "private",
                "url": f"https://{DOMAIN['domain_name']}.daily.co/{name}",
                "created_at": "2026-11-22T09:00:00.000Z", "config": {},
            }
        if path == "/v1/meeting-tokens" and method == "POST":
            return 200, {"token": "t" * 160}
        if path.startswith("/v1/rooms/") and method == "DELETE":
            self.rooms.discard(path.rsplit("/", 1)[-1])
            return 200, {"deleted": True}
        if path.endswith("/presence"):
            return 200, {"total_count": 0, "data": []}
        return 404, {"error": "not-found", "info": path}

    # Fly -----------------------------------------------------------------------------------
    def fly_call(self, method: str, match: re.Match[str], query: dict[str, str], body: Any) -> Reply:
        machine_id, action = match.group(1), match.group(2)
        if machine_id is None and method == "POST":
            return self.fly_create(body)
        if machine_id is None:  # list: the whole app, optionally filtered by one metadata key
            wanted = {k[9:]: v for k, v in query.items() if k.startswith("metadata.")}
            pair = next(iter(wanted.items()), None)
            self.fly_whole_lists += pair is None
            listed = (self.fly[i] for i in self.fly_by_metadata.get(pair, [])) if pair else self.fly.values()
            return 200, [self._booted(m) for m in listed
                         if all((m["config"].get("metadata") or {}).get(k) == v for k, v in wanted.items())]
        machine = self.fly.get(machine_id)
        if machine is None:
            return 404, {"error": "machine not found"}
        if action == "/wait":  # boots within the call's latency
            machine["state"] = "started"
            return 200, {"ok": True}
        if action == "/stop" or method == "DELETE":
            machine["state"] = "destroyed"
            return 200, {"ok": True}
        return 200, self._booted(machine)

    def fly_create(self, body: Any) -> Reply:
        """Fly's `POST /v1/apps/<app>/machines`: a machine named and configured as asked."""
        config = (body or {}).get("config") or {}
        name = (body or {}).get("name") or f"gen-{next(self._ids)}"
        if name in self.fly_names:
            return 409, {"error": f"already_exists: {name}"}
        mid = f"m{next(self._ids):012x}"
        self.fly[mid] = {"id": mid, "name": name, "state": "created", "config": config, "events": [],
                         "created_at": "2026-11-22T09:00:00Z"}
        self.fly_names.add(name)
        for pair in (config.get("metadata") or {}).items():
            self.fly_by_metadata.setdefault((pair[0], str(pair[1])), []).append(mid)
        return 200, self.fly[mid]

    def fly_create_many(self, bodies: Any) -> Reply:
        """Fly's create for each body of a list, at once and uncounted (a benchmark's fill, not the
        dispatcher's calls): 200 with the machines' ids, else the first refusal's answer."""
        if not isinstance(bodies, list):
            return 400, {"error": "a JSON list of create bodies is expected"}
        made = []
        for body in bodies:
            status, machine = self.fly_create(body)
            if status != 200:
                return status, machine
            made.append(machine["id"])
        return 200, {"ids": made}

    @staticmethod
    def _booted(machine: dict[str, Any]) -> dict[str, Any]:
        machine["state"] = "started" if machine["state"] == "created" else machine["state"]
        return machine

    # Compute Engine ------------------------------------------------------------------------
    def gce_call(self, method: str, match: re.Match[str], query: dict[str, str], body: Any) -> Reply:
        kind, name = match.group(1), match.group(2)
        if kind == "operations":
            return 200, {"items": []}
        if name is None and method == "POST":
            name = (body or {}).get("name", "")
            if name in self.gce:
                return 409, {"error": {"code": 409, "message": "exists", "errors": [{"reason": "alreadyExists"}]}}
            self.gce[name] = {"name": name, "status": "RUNNING", "labels": (body or {}).get("labels") or {},
                              "creationTimestamp": "2026-11-22T09:00:00.000-00:00"}
            return 200, {"kind": "compute#operation", "name": f"op-{name}", "status": "RUNNING"}
        if name is None:
            return 200, {"items": list(self.gce.values())}
        instance = self.gce.get(name)
        if instance is None:
            return 404, {"error": {"code": 404, "message": "not found", "errors": [{"reason": "notFound"}]}}
        if method == "DELETE":
            del self.gce[name]
            return 200, {"kind": "compute#operation", "name": f"op-del-{name}"}
        return 200, instance

    # ECS (JSON 1.1, X-Amz-Target) ------------------------------------------------------------
    def ecs_call(self, target: str, body: Any) -> Reply:
        operation = target.rsplit(".", 1)[-1]
        if operation == "RunTask":
            token = body.get("clientToken") or f"t{next(self._ids)}"
            if token not in self.ecs:
                arn = f"arn:aws:ecs:eu-west-1:123456789012:task/bench/{next(self._ids):032x}"
                family = str(body.get("taskDefinition", "")).rsplit("/", 1)[-1].split(":", 1)[0]
                self.ecs[token] = {"taskArn": arn, "lastStatus": "PROVISIONING", "desiredStatus": "RUNNING",
                                   "startedBy": body.get("startedBy"), "tags": body.get("tags") or [],
                                   "group": f"family:{family}", "createdAt": time.time(), "containers": []}
            return 200, {"tasks": [self.ecs[token]], "failures": []}
        if operation == "DescribeTasks":
            wanted = set(body.get("tasks") or [])
            tasks = [t for t in self.ecs.values() if t["taskArn"] in wanted]
            for task in tasks:
                task["lastStatus"] = "RUNNING"
            return 200, {"tasks": tasks, "failures": []}
        if operation == "ListTasks":  # as ECS filters: desired status RUNNING unless asked, family, startedBy
            desired, by, family = body.get("desiredStatus", "RUNNING"), body.get("startedBy"), body.get("family")
            return 200, {"taskArns": [t["taskArn"] for t in self.ecs.values() if t["desiredStatus"] == desired
                                      and by in (None, t["startedBy"]) and family in (None, t["group"][7:])]}
        if operation == "StopTask":
            for task in self.ecs.values():
                if task["taskArn"] == body.get("task"):
                    task["desiredStatus"] = "STOPPED"
                    return 200, {"task": task}
            return 400, {"__type": "InvalidParameterException", "message": "The referenced task was not found."}
        return 400, {"__type": "InvalidParameterException", "message": operation}

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        url = urlsplit(target)
        path, query = url.path, dict(parse_qsl(url.query))
        data = json.loads(body) if body else None
        if amz := headers.get("x-amz-target"):
            self.calls[f"ecs {amz.rsplit('.', 1)[-1]}"] += 1
            keys = {AWS_KEY_ID: KnownKey(AWS_SECRET, AWS_TOKEN)}
            if refused := check(method, path, headers, body, keys=keys, region=AWS_REGION, service="ecs"):
                return refused.status, {"__type": refused.code, "message": refused.message}
            return self.ecs_call(amz, data or {})
        if m := _FLY.match(path):
            self.calls[f"fly {method} {_route(m)}"] += 1
            return self.fly_call(method, m, query, data)
        if m := _GCE.match(path):
            self.calls[f"gce {method} {m.group(1)}{'/x' if m.group(2) else ''}"] += 1
            return self.gce_call(method, m, query, data)
        if (m := _GCE_TEMPLATE.match(path)) and method == "GET":
            self.calls["gce GET instanceTemplates/x"] += 1
            return 200, {"name": m.group(1), "properties": _TEMPLATE_PROPERTIES}
        self.calls[f"daily {method} {re.sub(r'/rooms/[^/]+', '/rooms/x', path)}"] += 1
        return self.daily(method, path, data)


def _route(m: re.Match[str]) -> str:
    return "machines" + ("/x" if m.group(1) else "") + (m.group(2) or "")


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and Content-Length bodies (what every client here sends)."""

    def __init__(self, fleet: Fleet, control: Callable[[str, str, bytes], Reply | None]) -> None:
        self.fleet, self.control = fleet, control
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.fleet.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            lines = self.buffer[:head_end].decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < head_end + 4 + length:
                return
            body = self.buffer[head_end + 4 : head_end + 4 + length]
            self.buffer = self.buffer[head_end + 4 + length :]
            reply = self.control(method, target, body)
            if reply is not None:
                self.respond(*reply)
                continue
            status, payload = self.fleet.answer(method, target, headers, body)
            ecs = "x-amz-target" in headers
            asyncio.get_running_loop().call_later(self.fleet.latency, self.respond, status, payload, ecs)

    def respond(self, status: int, payload: Any, ecs: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        data = json.dumps(payload, separators=(",", ":")).encode()
        kind = "application/x-amz-json-1.1" if ecs else "application/json"
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'X')}\r\ncontent-type: {kind}\r\n"
                f"content-length: {len(data)}\r\n\r\n")
        self.transport.write(head.encode() + data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int, latency: float) -> None:
    fleet = Fleet(latency)

    def control(method: str, target: str, body: bytes) -> Reply | None:
        url = urlsplit(target)
        if url.path == "/_fly/machines" and method == "POST":
            return fleet.fly_create_many(json.loads(body) if body else None)
        if url.path == "/_stats":
            return 200, {"calls": dict(fleet.calls), "connections": fleet.connections, "cpu": time.process_time(),
                         "fly_whole_lists": fleet.fly_whole_lists}
        if url.path == "/_reset" and method == "POST":
            query = dict(parse_qsl(url.query))
            fleet.reset(float(query.get("latency", latency)))
            return 200, {"ok": True}
        return None

    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpProtocol(fleet, control), "127.0.0.1", port, backlog=1024)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every call")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.latency))


if __name__ == "__main__":
    main()
