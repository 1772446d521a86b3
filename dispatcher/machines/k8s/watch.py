"""One object of the API server watched until it reaches a state: a pod's start, a SandboxClaim's binding.

`GET <collection>?watch=1&fieldSelector=metadata.name=<name>&resourceVersion=<v>&timeoutSeconds=<n>`
answers newline-delimited JSON events (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`), each
after version `v` (kubernetes.io/docs/reference/using-api/api-concepts, "Efficient detection of
changes"). `metadata.name` is a field every resource can be selected by, a CRD's custom resources
too (kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors, "Custom resources
fields"). A watch ends at its `timeoutSeconds`, or when a connection breaks: it is opened again
from the last version seen, so no change is missed or read twice. The API server keeps a bounded
history (etcd compacts it): a version too old for it is `410 Gone`, as an HTTP status or, more often,
as an `ERROR` event whose `Status` has `code: 410` (kubernetes/kubernetes#35068). Then the object is
listed again (its state now, and the list's version) and watched from there. Everything is bounded
by the caller's deadline; a refused credential or a malformed request is raised at once.

Given a `labels` selector instead, it watches every object of the collection the selector matches
(`labelSelector=…`, on lists and watches alike): a re-list judges each object listed, in turn.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import orjson

from dispatcher.machines.base import MachinesError
from dispatcher.machines.k8s.api import POD_VERBS, KubeApi
from dispatcher.outbound.http_client import HttpError
from dispatcher.outbound.retry import RETRYABLE_STATUSES, retry_after_of

log = logging.getLogger("dispatcher.machines.k8s")

T = TypeVar("T")
# (the event's type, or LISTED for a re-list; the object, or None when a re-list finds none) → the
# answer, or None to watch on. It may raise to end the wait.
Judge = Callable[[str, dict[str, Any] | None], T | None]
LISTED = "LISTED"
WATCH_SECONDS = 240  # one watch request's `timeoutSeconds` at most; then it is opened again
MAX_PAUSE = 5.0  # the longest pause between two failed watches


class _Gone(Exception):
    """The version is too old (410), or the API server ended the watch with an error: list again."""


class _Broken(Exception):
    """No answer, a broken stream or a 5xx/429: watch again from the last version, after a pause."""

    def __init__(self, why: str, retry_after: float | None = None) -> None:
        super().__init__(why)
        self.retry_after = retry_after


class ObjectWatch(Generic[T]):
    """Watches `name` in `collection` (an absolute path: `/api/v1/namespaces/<ns>/pods`, or a custom
    resource's, whose `metadata.name` field selector every API server supports) until `judge` answers.
    `pause` is the first pause after a failed watch (doubled per failure, to MAX_PAUSE); `rbac` names
    the verbs a 401 or 403 says the dispatcher's ServiceAccount needs."""

    def __init__(self, api: KubeApi, collection: str, name: str, judge: Judge[T], *, pause: float,
                 rbac: str = POD_VERBS, labels: str | None = None) -> None:
        self._api, self._collection, self._name, self._judge = api, collection, name, judge
        self._pause, self._rbac = pause, rbac
        self._selects = {"labelSelector": labels} if labels else {"fieldSelector": f"metadata.name={name}"}
        self.version: str | None = None  # the last version seen: the next watch starts after it

    async def until(self, since: str | None, deadline: float) -> T:
        """The judge's answer; `TimeoutError` at `deadline` (the event loop's clock). `since` None: the
        object is listed first."""
        loop = asyncio.get_running_loop()
        self.version, failures = since, 0
        async with asyncio.timeout_at(deadline):
            while True:
                if self.version is None and (answer := await self._relist()) is not None:
                    return answer
                seconds = max(1, min(WATCH_SECONDS, math.ceil(deadline - loop.time())))
                try:
                    if (answer := await self._watch(seconds)) is not None:
                        return answer
                    failures = 0  # ended at its timeoutSeconds: opened again at once
                except _Gone as exc:
                    log.info("watch of %s: %s; listing it again", self._name, exc)
                    failures += 1
                    await self._rest(failures, None)
                    self.version = None
                except _Broken as exc:
                    log.info("watch of %s broke (%s); watching again from version %s", self._name, exc, self.version)
                    failures += 1
                    await self._rest(failures, exc.retry_after)

    async def _rest(self, failures: int, retry_after: float | None) -> None:
        if failures > 1 or retry_after:  # the first failure is retried at once: a watch cut by a proxy
            await asyncio.sleep(max(min(MAX_PAUSE, self._pause * 2 ** (failures - 2)), retry_after or 0.0))

    async def _relist(self) -> T | None:
        response = await self._api.call("GET", self._collection, params=dict(self._selects))
        if response.status_code != 200:
            raise self._api.failed(response, f"list {self._name}", self._rbac)
        page = response.json()
        self.version = str((page.get("metadata") or {}).get("resourceVersion") or "") or None
        if self.version is None:
            raise MachinesError("k8s_rejected", f"the API server's list of {self._name} has no resourceVersion")
        items = [item for item in page.get("items") or [] if isinstance(item, dict)]
        if "labelSelector" in self._selects:
            return next((answer for item in items if (answer := self._judge(LISTED, item)) is not None), None)
        return self._judge(LISTED, items[0] if items else None)

    async def _watch(self, seconds: int) -> T | None:
        """One watch request: the judge's answer, or None when the API server ended it."""
        assert self.version is not None
        params = {"watch": "1", **self._selects, "resourceVersion": self.version,
                  "timeoutSeconds": str(seconds), "allowWatchBookmarks": "true"}
        try:
            async with self._api.stream(self._collection, params, seconds=seconds) as answer:
                if answer.status_code == 410:
                    raise _Gone(f"version {self.version} is too old (HTTP 410)")
                if answer.status_code != 200:
                    response = await answer.body()
                    if answer.status_code in RETRYABLE_STATUSES:
                        raise _Broken(f"HTTP {answer.status_code}", retry_after_of(response.headers))
                    raise self._api.failed(response, f"watch {self._name}", self._rbac)
                async for line in answer.lines():
                    if (answer_now := self._event(line)) is not None:
                        return answer_now
        except HttpError as exc:
            raise _Broken(str(exc)) from None
        return None

    def _event(self, line: bytes) -> T | None:
        try:
            event = orjson.loads(line)
            kind, thing = str(event["type"]), event["object"]
        except (ValueError, KeyError, TypeError):
            raise _Broken(f"an event that is not one: {line[:80]!r}") from None
        if not isinstance(thing, dict):
            raise _Broken(f"a {kind} event with no object")
        if kind == "ERROR":  # a Status: 410 Expired, or the watch cache's own failure
            raise _Gone(f"HTTP {thing.get('code')} {thing.get('reason', '')}: {str(thing.get('message', ''))[:200]}")
        self.version = str((thing.get("metadata") or {}).get("resourceVersion") or self.version)
        if kind == "BOOKMARK":
            return None
        return self._judge(kind, thing)
