"""One checkout's start path, in-process: run as a script (`python bench/start_path_worker.py`) with
PYTHONPATH at the checkout measured, so it imports that checkout's dispatcher and nothing of this
bench's own (bench/start_path.py drives it and compares checkouts).

The dispatcher's app is built from the environment as `python -m dispatcher` builds it, its
lifespan run, and `POST /start` called through ASGI directly (no server, no client library: their
CPU is not the dispatcher's route). Prints one JSON object: CPU and wall per start over the
measured starts, and with `profile`, cProfile's own time per start grouped by who owns the frame.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import pstats
import sys
import time
from collections import defaultdict
from typing import Any

# Who owns a frame, by its file's path: the first fragment found names it (order matters).
OWNERS = (
    ("/dispatcher/api/", "dispatcher: routes, auth, schemas"),
    ("/dispatcher/sessions/", "dispatcher: session service"),
    ("/dispatcher/machines/", "dispatcher: provider (Fly) client"),
    ("/dispatcher/media/", "dispatcher: rooms, ICE"),
    ("/dispatcher/artifacts/", "dispatcher: recording policy"),
    ("/dispatcher/releases/", "dispatcher: releases"),
    ("/dispatcher/store/", "dispatcher: store"),
    ("/dispatcher/observability/", "dispatcher: logs, metrics, tracing"),
    ("/dispatcher/outbound/", "dispatcher: outbound HTTP, limits"),
    ("/dispatcher/", "dispatcher: other"),
    ("/voicefleet_settings/", "typed settings"),
    ("/fastapi/", "FastAPI"),
    ("/starlette/", "Starlette"),
    ("/pydantic", "pydantic"),
    ("/aiohttp/", "aiohttp"),
    ("/multidict/", "aiohttp"),
    ("/yarl/", "aiohttp"),
    ("/opentelemetry/", "OpenTelemetry API"),
    ("/prometheus_client/", "prometheus_client"),
    ("/asyncio/", "asyncio"),
    ("/json/", "json"),
    ("/logging/", "logging"),
)


def owner(filename: str) -> str:
    for fragment, name in OWNERS:
        if fragment in filename:
            return name
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C)"
    return "other Python"


async def call(app: Any, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """One HTTP request through the app's ASGI interface."""
    path, _, query = path.partition("?")
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw += [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
             "root_path": "", "headers": raw, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080)}
    sent = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def burst(app: Any, starts: int, concurrency: int, body: bytes, headers: dict[str, str]) -> list[int]:
    numbers = iter(range(starts))
    statuses: list[int] = []

    async def worker() -> None:
        for _ in numbers:
            status, answer = await call(app, "POST", "/start", body, headers)
            if status not in (200, 201):
                raise RuntimeError(f"POST /start answered {status}: {answer[:500]!r}")
            statuses.append(status)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


async def set_up(app: Any, plan: dict[str, Any]) -> dict[str, str]:
    """The features asked for: a runtime key (its secret becomes the caller's), capacity values."""
    headers = {"authorization": f"Bearer {plan['key']}"}
    admin = {"authorization": f"Bearer {plan['admin_key']}"} if plan.get("admin_key") else None
    if plan.get("runtime_key") and admin:
        status, answer = await call(app, "POST", "/keys", json.dumps({"name": "bench-runtime"}).encode(), admin)
        if status != 201:
            raise RuntimeError(f"POST /keys answered {status}: {answer[:500]!r}")
        headers = {"authorization": f"Bearer {json.loads(answer)['secret']}"}
    if plan.get("capacity") and admin:
        status, answer = await call(app, "PATCH", "/capacity", json.dumps(plan["capacity"]).encode(), admin)
        if status != 200:
            raise RuntimeError(f"PATCH /capacity answered {status}: {answer[:500]!r}")
    return headers


async def run(plan: dict[str, Any]) -> dict[str, Any]:
    from dispatcher.app import create_app
    from dispatcher.settings import Settings

    env: dict[str, str] = plan["env"]
    app = create_app(Settings.from_env(env), env=env)
    try:  # the collector as `python -m dispatcher` sets it, where the checkout has it
        from dispatcher.serving.collector import tune_collector
    except ImportError:
        pass
    else:
        tune_collector()
    body = json.dumps(plan["body"]).encode()
    async with app.router.lifespan_context(app):
        headers = await set_up(app, plan)
        await burst(app, plan["warm_up"], plan["concurrency"], body, headers)  # pools, first-use imports
        rows = []
        for _ in range(plan["repeats"]):
            cpu, wall = time.process_time(), time.perf_counter()
            await burst(app, plan["starts"], plan["concurrency"], body, headers)
            rows.append(((time.process_time() - cpu) / plan["starts"] * 1000,
                         (time.perf_counter() - wall) / plan["starts"] * 1000))
        shares: dict[str, float] = {}
        own: list[tuple[float, str]] = []
        cumulative: list[tuple[float, str]] = []
        steps: dict[tuple[str, str], float] = defaultdict(float)
        if plan.get("profile"):
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            await burst(app, plan["starts"], plan["concurrency"], body, headers)
            profiler.disable()
            stats = pstats.Stats(profiler)
            if plan.get("pstats"):  # for `python -m pstats`: callers, callees
                stats.dump_stats(plan["pstats"])
            by_owner: dict[str, float] = defaultdict(float)
            for (filename, line, name), row in stats.stats.items():  # type: ignore[attr-defined]
                by_owner[owner(filename)] += row[2]  # own time
                where = f"{shorter(filename)}:{line} {name}"
                own.append((row[2], where))
                if "/dispatcher/" in filename:  # the dispatcher's own steps, each with what it calls
                    cumulative.append((row[3], where))
                for fragment, function in plan.get("steps", ()):
                    if fragment in filename and name == function:
                        steps[(fragment, function)] += row[3] / plan["starts"] * 1e6
            total = sum(by_owner.values()) or 1.0
            shares = {name: seconds / total for name, seconds in sorted(by_owner.items(), key=lambda x: -x[1])}
    top = plan.get("top", 30)
    return {"cpu_ms": [r[0] for r in rows], "wall_ms": [r[1] for r in rows], "shares": shares,
            "own_us": per_start(own, plan["starts"], top), "cumulative_us": per_start(cumulative, plan["starts"], top),
            "steps": [(us, fragment, function) for (fragment, function), us in steps.items()]}


def shorter(filename: str) -> str:
    return filename.rsplit("site-packages/", 1)[-1].rsplit("/python3.11/", 1)[-1].split("/wt/")[-1]


def per_start(rows: list[tuple[float, str]], starts: int, top: int) -> list[tuple[float, str]]:
    return [(seconds / starts * 1e6, where) for seconds, where in sorted(rows, reverse=True)[:top]]


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(json.loads(sys.stdin.read())))))
