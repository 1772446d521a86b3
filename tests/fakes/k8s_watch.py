"""The fake API server's watches and field selectors (tests/fakes/k8s.py), as the real API server's.

- One history per watched kind (pods; SandboxClaims in tests/fakes/k8s_sandbox.py), as the API
  server keeps one watch cache per resource. Every change to an object (its create, each write, the
  kubelet's or a controller's status writes, its removal) is an event with the version it was given,
  from the one counter every kind's versions come from (etcd's revision, `clock`); the history is
  bounded (`capacity`), and `compact()` drops it all, as etcd's compaction does.
- `GET …/<kind>?watch=1` streams newline-delimited JSON events, `{"type", "object"}`, of the objects its
  `labelSelector` and `fieldSelector` match: with `resourceVersion` the changes after it; without
  one (or "0") an ADDED event per object there now, then the changes. A version older than the history
  keeps is an `ERROR` event whose `Status` is 410 `Expired` ("too old resource version"), then the
  end of the stream; one newer than the store's is an `ERROR` 504 `Timeout` ("Too large resource version").
  A watch ends at its `timeoutSeconds` (the API server's default when it has none: 1800 s), and a
  watcher that fell behind the history is ended with the same 410. No bookmarks are sent (they are
  optional: `allowWatchBookmarks` is a request the server may ignore).
- `fieldSelector` on lists and watches: the fields the API server supports for the kind (`=`, `==`,
  `!=`): pods' own, and `metadata.name` and `metadata.namespace` only for a custom resource whose CRD
  declares no `selectableFields` (agent-sandbox's declare none); any other is 400 `field label not supported`.
- `cut_next(after)`: the next watch's connection breaks after `after` events (a proxy or a load
  balancer dropping it), with no end to the chunked answer.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

DEFAULT_WATCH_SECONDS = 1800  # kube-apiserver's --min-request-timeout
Fields = Mapping[str, Callable[[dict[str, Any]], str]]
# Every resource's, a custom resource's too (kubernetes.io "Field Selectors", "Custom resources fields").
METADATA_FIELDS: Fields = {
    "metadata.name": lambda p: str(p["metadata"].get("name", "")),
    "metadata.namespace": lambda p: str(p["metadata"].get("namespace", "")),
}
# Pod fields the API server filters on (pkg/registry/core/pod/strategy.go, ToSelectableFields).
POD_FIELDS: Fields = {
    **METADATA_FIELDS,
    "spec.nodeName": lambda p: str(p.get("spec", {}).get("nodeName", "")),
    "spec.restartPolicy": lambda p: str(p.get("spec", {}).get("restartPolicy", "")),
    "spec.schedulerName": lambda p: str(p.get("spec", {}).get("schedulerName", "")),
    "spec.serviceAccountName": lambda p: str(p.get("spec", {}).get("serviceAccountName", "")),
    "status.phase": lambda p: str(p.get("status", {}).get("phase", "")),
    "status.podIP": lambda p: str(p.get("status", {}).get("podIP", "")),
    "status.nominatedNodeName": lambda p: str(p.get("status", {}).get("nominatedNodeName", "")),
}
FieldRequirement = tuple[str, bool, str]  # (field, equal?, value)


def parse_fields(raw: str, fields: Fields) -> list[FieldRequirement]:
    """A field selector's requirements on `fields`; ValueError for one the API server refuses."""
    requirements: list[FieldRequirement] = []
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        op = next((op for op in ("!=", "==", "=") if op in part), None)
        if op is None:
            raise ValueError(f"invalid selector: {part!r}; can't understand {part!r}")
        field, _, value = part.partition(op)
        if field.strip() not in fields:
            raise ValueError(f"field label not supported: {field.strip()}")
        requirements.append((field.strip(), op != "!=", value.strip()))
    return requirements


def fields_match(requirements: list[FieldRequirement], fields: Fields, thing: dict[str, Any]) -> bool:
    return all((fields[field](thing) == value) == equal for field, equal, value in requirements)


@dataclass(frozen=True)
class Event:
    version: int
    kind: str  # ADDED, MODIFIED, DELETED
    thing: dict[str, Any]


def _line(kind: str, thing: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": kind, "object": thing}) + b"\n"


def _error(code: int, reason: str, message: str) -> bytes:
    return _line("ERROR", {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": message, "reason": reason, "code": code})


class _Cut(Exception):
    """Breaks the connection mid-answer (the server raises; the chunked answer never ends)."""


class WatchHistory:
    """One kind's events in the namespace and the watches reading them. `lock` is the fake's objects
    lock; `clock` the store's newest version (any kind's); `fields` the kind's selectable fields."""

    def __init__(self, lock: threading.RLock, fields: Fields, clock: Callable[[], int], capacity: int = 1000) -> None:
        self._lock = lock
        self.fields, self._clock = fields, clock
        self._events: collections.deque[Event] = collections.deque(maxlen=capacity)
        self.floor = 0  # every event after this version is still kept
        self._watchers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._cuts: list[int] = []

    def record(self, kind: str, thing: dict[str, Any]) -> None:
        """A change, with the version the object was just given (called under the lock)."""
        version = int(thing["metadata"]["resourceVersion"])
        if len(self._events) == self._events.maxlen:
            self.floor = self._events[0].version
        self._events.append(Event(version, kind, copy.deepcopy(thing)))
        for loop, arrived in list(self._watchers):
            loop.call_soon_threadsafe(arrived.set)

    def compact(self) -> None:
        """Drop the history so far, as etcd's compaction does: a watch from before now is 410 Gone."""
        with self._lock:
            self.floor = self.latest
            self._events.clear()

    @property
    def latest(self) -> int:
        """The store's newest version: what a list answers, and the newest a watch may start from."""
        return self._clock()

    def versions_of(self, name: str) -> list[int]:
        """The versions of `name`'s changes the history keeps, oldest first (what a watch replays)."""
        with self._lock:
            return [e.version for e in self._events if e.thing["metadata"].get("name") == name]

    @property
    def open_watches(self) -> int:
        """Watches streaming now (each holds one of its client's connections)."""
        with self._lock:
            return len(self._watchers)

    def cut_next(self, after: int) -> None:
        """The next watch's connection breaks after `after` events."""
        with self._lock:
            self._cuts.append(after)

    def watch(self, request: Request, match: Callable[[dict[str, Any]], bool],
              objects: Callable[[], list[dict[str, Any]]]) -> Response:
        query = request.query_params
        try:
            seconds = int(query.get("timeoutSeconds", DEFAULT_WATCH_SECONDS))
            since = query.get("resourceVersion", "")
            start = int(since) if since not in ("", "0") else None
        except ValueError as exc:
            return _bad(f"unable to parse the watch's parameters: {exc}")
        with self._lock:
            cut = self._cuts.pop(0) if self._cuts else None
            first: list[bytes] = []
            if start is None:  # the state now, as ADDED events, then what changes
                first = [_line("ADDED", copy.deepcopy(p)) for p in objects() if match(p)]
                start = self.latest
            elif start < self.floor:
                first = [_error(410, "Expired", f"too old resource version: {start} ({self.floor + 1})")]
            elif start > self.latest:
                first = [_error(504, "Timeout", f"Timeout: Too large resource version: {start}, "
                                                f"current: {self.latest}")]
        ended = len(first) == 1 and first[0].startswith(b'{"type":"ERROR"')
        return StreamingResponse(self._stream(first, None if ended else start, seconds, match, cut),
                                 media_type="application/json")

    async def _stream(self, first: list[bytes], cursor: int | None, seconds: int,
                      match: Callable[[dict[str, Any]], bool], cut: int | None) -> AsyncIterator[bytes]:
        for line in first:
            yield line
        if cursor is None:
            return
        loop = asyncio.get_running_loop()
        arrived = asyncio.Event()
        watcher = (loop, arrived)
        end, sent = loop.time() + seconds, 0
        with self._lock:
            self._watchers.add(watcher)
        try:
            while True:
                arrived.clear()
                with self._lock:
                    if cursor < self.floor:  # fell behind the history: the API server ends such a watch
                        yield _error(410, "Expired", f"too old resource version: {cursor} ({self.floor + 1})")
                        return
                    news = [e for e in self._events if e.version > cursor]
                for event in news:
                    cursor = event.version
                    if match(event.thing):
                        yield _line(event.kind, event.thing)
                        sent += 1
                        if cut is not None and sent >= cut:
                            raise _Cut("the watch's connection is cut")
                if cut == 0:
                    raise _Cut("the watch's connection is cut")
                if (left := end - loop.time()) <= 0:
                    return  # timeoutSeconds: the API server ends the watch
                try:
                    await asyncio.wait_for(arrived.wait(), left)
                except TimeoutError:
                    return
        finally:
            with self._lock:
                self._watchers.discard(watcher)


def _bad(message: str) -> Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": "BadRequest", "code": 400}
    return Response(orjson.dumps(body), status_code=400, media_type="application/json")
