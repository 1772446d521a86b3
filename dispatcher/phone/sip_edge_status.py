"""Each SIP edge's own `GET /status` (sipedge/edge_status.py), for the dispatcher's `GET /status` and
`/metrics` (docs/sip.md, "Is the edge up?"): every edge SIP_EDGE_URL lists, asked at once, each within
ASK_SECONDS; the answers kept FRESH_SECONDS and read by one request at a time, so a dashboard polling
every second asks each edge once every FRESH_SECONDS whatever the number of pages open. An edge that did
not answer says why, in words that name the fix (a secret that differs, nothing listening, no answer in
time); nothing here changes where calls go (dispatcher/phone/sip_edges.py keeps its own account)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dispatcher.observability.log_text import shown
from dispatcher.outbound.http_client import HttpError
from dispatcher.phone.sip_edge_gauges import SipEdgeGauges
from dispatcher.phone.sip_edges import SipEdges, json_of, timed_out

ASK_SECONDS = 2.0
FRESH_SECONDS = 5.0
MAX_TRUNKS = 100  # an edge's file lists a handful; more is shown cut, `trunks_cut` saying how many


class EdgeCalls(BaseModel):
    in_progress: int = Field(ge=0, description="Calls in progress, inbound and outbound together.")
    free: int = Field(ge=0, description="Call slots free now (with workers: on the workers that answered).")
    total: int = Field(ge=0, description="Call slots in all (with workers: every worker's).")


class EdgeTrunk(BaseModel):
    name: str = Field(max_length=128)
    registration: str = Field(max_length=32, description="`not_registering` (no registrar), `registering` (no "
                              "answer yet), `registered`, `refused` (with the registrar's `code` and `reason`; 408: "
                              "no registrar answered), `failed` (PJSUA sent no REGISTER, with its `status` and "
                              "`reason`, which ends with what comes next: the edge asking again, or the registrar "
                              "to fix in its file), `unregistered` (the edge is stopping).")
    code: int | None = None
    reason: str | None = Field(default=None, max_length=80)
    status: int | None = Field(default=None, description="With `failed`: PJSUA's own status (pj_status_t).")


class EdgeWorkers(BaseModel):
    total: int = Field(ge=0)
    answering: int = Field(ge=0)


class SipEdgeOut(BaseModel):
    """One SIP edge as the dispatcher last asked it."""

    model_config = ConfigDict(extra="ignore")  # a newer edge's other figures are left out, not refused

    url: str = Field(description="The edge's control API, as SIP_EDGE_URL lists it.")
    answering: bool = Field(description="Whether it answered its status; false: `error` says why.")
    error: str | None = Field(default=None, description="Why it did not: `not answering: connection refused…`, "
                              "`not answering: no answer within 2 s`, `401: the edge's control key…`, `404: …` "
                              "(an edge older than this dispatcher).")
    up_since: float | None = Field(default=None, description="When its process started (epoch seconds).")
    version: str | None = Field(default=None, max_length=64, description="Its code: `sipedge-` and a digest of the "
                                "source it runs, read at its start; edges running the same code show the same.")
    ready: bool | None = Field(default=None, description="Its SIP stack is up (with workers: at least one's).")
    calls: EdgeCalls | None = None
    trunks: list[EdgeTrunk] | None = Field(default=None, max_length=MAX_TRUNKS, description=f"Its trunks, the first "
                                           f"{MAX_TRUNKS} of them.")
    trunks_cut: int | None = Field(default=None, gt=0, description=f"How many trunks past the first {MAX_TRUNKS} "
                                   "are not shown (absent when none).")
    refused_last_minute: int | None = Field(default=None, ge=0, description="INVITEs it refused (and strangers' "
                                            "requests it ignored) over the last 60 s.")
    workers: EdgeWorkers | None = Field(default=None, description="With several workers behind Kamailio: how many, "
                                        "and how many answered the edge's front.")
    draining: bool | None = Field(default=None, description="It is stopping: new calls are refused while its calls "
                                  "in flight go on until they end or its `drain_seconds` pass (absent from an older "
                                  "edge).")


class SipEdgeStatus:
    def __init__(self, edges: SipEdges, gauges: SipEdgeGauges | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._edges = edges
        self._gauges = gauges
        self._clock = clock
        self._lock = asyncio.Lock()
        self._last: tuple[float, list[dict[str, Any]]] | None = None

    async def read(self) -> list[dict[str, Any]]:
        """Every edge's status, in SIP_EDGE_URL's order: asked now, or by another request within FRESH_SECONDS."""
        if (fresh := self._fresh()) is not None:
            return fresh
        async with self._lock:
            if (fresh := self._fresh()) is not None:
                return fresh
            read = list(await asyncio.gather(*(self._ask(url) for url in self._edges.urls)))
            self._last = (self._clock(), read)
            if self._gauges is not None:
                self._gauges.show(read)
            return read

    def _fresh(self) -> list[dict[str, Any]] | None:
        if self._last is not None and self._clock() - self._last[0] < FRESH_SECONDS:
            return self._last[1]
        return None

    async def _ask(self, url: str) -> dict[str, Any]:
        try:
            answer = await self._edges.client(url).request("GET", "/status", timeout=ASK_SECONDS)
        except HttpError as exc:
            why = f"no answer within {ASK_SECONDS:g} s" if timed_out(exc) else str(exc)
            return _failed(url, f"not answering: {why}")
        body = json_of(answer)
        if answer.status_code == 401:
            return _failed(url, "401: the edge's control key (the variable its control_secret_env names) is not the "
                           "one derived from SIP_EDGE_SECRET for this URL: give it that edge's own "
                           "(docs/sip.md#edge-credentials)")
        if answer.status_code == 404:
            return _failed(url, "404: the edge has no GET /status: it runs code older than this dispatcher's; "
                           "replace it with the dispatcher's image (docs/sip.md, \"In the cloud\")")
        if answer.status_code != 200 or not isinstance(body, dict):
            said = body.get("error", {}).get("message") if isinstance(body, dict) and isinstance(
                body.get("error"), dict) else None
            # any server at that address chose these words: one escaped line, so none forges a line of its own
            return _failed(url, f"{answer.status_code}: {shown(said) if said else 'not a status the edge sends'}")
        try:
            return SipEdgeOut.model_validate({**_trunks_cut(body), "url": url, "answering": True, "error": None}
                                             ).model_dump(exclude_none=True)
        except ValidationError as exc:
            return _failed(url, f"its status could not be read ({exc.error_count()} fields wrong): is the URL "
                           "the edge's control API?")


def _trunks_cut(body: dict[str, Any]) -> dict[str, Any]:
    """`body` with its first MAX_TRUNKS trunks and how many more it listed: an edge with more is still answering."""
    trunks = body.get("trunks")
    if not isinstance(trunks, list) or len(trunks) <= MAX_TRUNKS:
        return {**body, "trunks_cut": None}
    return {**body, "trunks": trunks[:MAX_TRUNKS], "trunks_cut": len(trunks) - MAX_TRUNKS}


def _failed(url: str, why: str) -> dict[str, Any]:
    return {"url": url, "answering": False, "error": why}
