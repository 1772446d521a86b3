"""What FastAPI's request handling costs a `POST /start`-shaped route, per way of taking its inputs.

    uv run --all-groups python -m bench.route_params_cost [--requests 4000] [--rounds 5]

Each variant is a FastAPI app of its own with one POST route answering a fixed response, called
in-process through ASGI (no server, no network), so what differs between variants is only how the
route takes its inputs: a dependency (as a route's and as a router's too), the JSON body as a model,
an optional query and header parameter declared to FastAPI, or the same two read from the request
by hand. Prints each variant's best-of-rounds CPU µs per request and every round's. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Query, Request, Response
from pydantic import BaseModel

ANSWER = b'{"session_id":"0123456789abcdef01234567"}'


class Payload(BaseModel):
    body: dict[str, Any] | None = None
    transport: str | None = None


async def caller(request: Request) -> str:
    return request.headers.get("authorization") or ""


def answered() -> Response:
    return Response(ANSWER, media_type="application/json", status_code=201)


def bare(router: APIRouter) -> None:
    @router.post("/start")
    async def start(request: Request) -> Response:
        return answered()


def dependency(router: APIRouter) -> None:
    @router.post("/start")
    async def start(request: Request, who: Annotated[str, Depends(caller)]) -> Response:
        return answered()


def body(router: APIRouter) -> None:
    @router.post("/start")
    async def start(request: Request, payload: Annotated[Payload | None, Body()] = None) -> Response:
        return answered()


def query_and_header(router: APIRouter) -> None:
    @router.post("/start")
    async def start(
        request: Request,
        wait: Annotated[str | None, Query(pattern="^started$")] = None,
        key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> Response:
        return answered()


def query_and_header_by_hand(router: APIRouter) -> None:
    @router.post("/start")
    async def start(request: Request) -> Response:
        request.query_params.get("wait"), request.headers.get("idempotency-key")
        return answered()


VARIANTS: dict[str, tuple[Callable[[APIRouter], None], bool]] = {
    "no inputs": (bare, False),
    "a dependency": (dependency, False),
    "a dependency, the router's too": (dependency, True),
    "the body as a model": (body, False),
    "query and header, declared": (query_and_header, False),
    "query and header, read by hand": (query_and_header_by_hand, False),
}


def app_of(route: Callable[[APIRouter], None], router_dependency: bool) -> FastAPI:
    router = APIRouter(dependencies=[Depends(caller)] if router_dependency else [])
    route(router)
    app = FastAPI()
    app.include_router(router)
    return app


async def per_request(app: FastAPI, requests: int) -> float:
    sent = b'{"body": {}}'
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/start", "raw_path": b"/start", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"bench"), (b"authorization", b"Bearer key"),
                         (b"content-type", b"application/json"), (b"content-length", str(len(sent)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2), "state": {}}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": sent, "more_body": False}

    async def send(message: Any) -> None:
        pass

    for _ in range(300):  # first calls build FastAPI's caches
        await app(dict(scope), receive, send)
    started = time.process_time()
    for _ in range(requests):
        await app(dict(scope), receive, send)
    return (time.process_time() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rounds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):  # variants alternate, so a busy moment spreads over all of them
        for name, (route, router_dependency) in VARIANTS.items():
            rounds[name].append(asyncio.run(per_request(app_of(route, router_dependency), args.requests)))
    for name, values in rounds.items():
        print(f"{name:34} {min(values):6.1f} µs  ({', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
