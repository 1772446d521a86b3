"""A fake Cloud Run Admin API v2 (`services.get`) and Cloud Monitoring v3 (`timeSeries.list`) for
one service's `run.googleapis.com/container/instance_count`: what the GCP drain reads to know
that the dispatcher's last instance is gone.

Its clock is the test's (`now`, `advance`): a test's drain sleeps by advancing it.

- `GET /v2/projects/P/locations/R/services/S` answers the documented Service fields the drain reads:
  `scaling` (`scalingMode`, `manualInstanceCount`; proto3 JSON leaves out a 0), `reconciling`,
  `updateTime` (RFC 3339, UTC), `terminalCondition`; 404 `NOT_FOUND` for another name.
  `apply_scaling` changes it the way an `up` does: `reconciling` until `settle()`, a new `updateTime`.
- `GET /v3/projects/P/timeSeries?filter=&interval.startTime=&interval.endTime=` answers the metric's
  raw points (no aggregation), one series per revision and `state` (`active`, `idle`), points in
  reverse time order, `int64Value` as a JSON string, `nextPageToken` paging. `interval.endTime` is
  required (400 `INVALID_ARGUMENT`), as is a filter of `key = "value"` terms joined by AND over the
  metric type and the resource's `service_name`/`location` labels (another term is refused).
- Sampling follows the metric's documented behaviour at its worst: one sample every 60 s per
  revision and state, visible only 180 s after it was taken. `zero_samples` says whether a
  revision with no instance keeps writing 0 (False: its series just stops, the other reading).
  Revisions are sampled on clocks of their own (`phase[revision]`, seconds after the fake's
  60 s tick): nothing in Google's documentation aligns two series' samples, so one revision's
  newest visible sample can be taken after a change while another's is still in its delay.
- Auth: with `bearer_token` set, a call without `Authorization: Bearer <it>` is 401 `UNAUTHENTICATED`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import FakeApi, Handler

PROJECT, REGION, SERVICE = "vf-test", "europe-west1", "vf-gcp-test-dispatcher"
METRIC = "run.googleapis.com/container/instance_count"
SAMPLE_SECONDS, VISIBLE_AFTER_SECONDS = 60, 180
_TERM = re.compile(r'^\s*([a-z_.]+)\s*=\s*"([^"]*)"\s*$')
_FILTER_KEYS = {"metric.type", "resource.type", "resource.labels.service_name", "resource.labels.location"}


def google_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": status, "message": message, "status": code}}, status_code=status)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Sample:
    revision: str
    state: str
    at: datetime
    value: int


class FakeCloudRun(FakeApi):
    error_body = staticmethod(lambda status: {"error": {"code": status, "message": "injected",
                                                        "status": "UNAVAILABLE"}})

    def __init__(self, project: str = PROJECT, region: str = REGION, service: str = SERVICE) -> None:
        super().__init__()
        self.project, self.region, self.service = project, region, service
        self.now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
        self.scaling: dict[str, Any] = {"scalingMode": "AUTOMATIC"}
        self.reconciling = False
        self.update_time = self.now
        self.revision = f"{service}-00001-abc"
        self.instances: dict[str, int] = {}  # revision -> live instances (all idle: no request)
        self.stops: list[tuple[datetime, str]] = []  # (when, revision): one instance of it ends then
        self.samples: list[Sample] = []
        self.zero_samples = True
        self.bearer_token: str | None = None
        self.max_page_size = 1
        self.phase: dict[str, float] = {}  # revision -> its samples' offset from the 60 s tick (0 <= it < 60)
        self._origin = self.now
        self._next_sample: dict[str, datetime] = {}

    @property
    def env(self) -> dict[str, str]:
        """What points the drain's Cloud Run wait at this fake."""
        return {"CLOUD_RUN_API_URL": f"{self.url}/v2", "MONITORING_API_URL": f"{self.url}/v3"}

    # --- the test's controls ---
    def start_instances(self, count: int) -> None:
        self.instances[self.revision] = self.instances.get(self.revision, 0) + count

    def apply_scaling(self, **scaling: Any) -> None:
        """An `up` changed the service-level scaling: the change is being rolled out."""
        self.scaling, self.reconciling, self.update_time = dict(scaling), True, self.now

    def settle(self) -> None:
        self.reconciling = False

    def stop_one_at(self, seconds_from_now: float) -> None:
        self.stops.append((self.now + timedelta(seconds=seconds_from_now), self.revision))

    def live(self) -> int:
        return sum(self.instances.values())

    def advance(self, seconds: float) -> None:
        """Time passes: instances end when due, and every 60 s each revision is sampled (at its phase)."""
        end = self.now + timedelta(seconds=seconds)
        while True:
            due = sorted((self._next_of(revision), revision) for revision in self.instances)
            if not due or due[0][0] > end:
                break
            at, revision = due[0]
            self._run_until(at)
            count = self.instances[revision]
            if count or self.zero_samples:
                self.samples += [Sample(revision, "active", at, 0), Sample(revision, "idle", at, count)]
            self._next_sample[revision] = at + timedelta(seconds=SAMPLE_SECONDS)
        self._run_until(end)
        self.now = end

    def _next_of(self, revision: str) -> datetime:
        """A revision's next sample: its phase after a 60 s tick, none before it was first seen."""
        if revision not in self._next_sample:
            first = self._origin + timedelta(seconds=self.phase.get(revision, 0.0))
            behind = max(0.0, (self.now - first).total_seconds())
            ticks = -(-behind // SAMPLE_SECONDS)  # the first tick at or after now
            self._next_sample[revision] = first + timedelta(seconds=ticks * SAMPLE_SECONDS)
        return self._next_sample[revision]

    def _run_until(self, moment: datetime) -> None:
        for when, revision in sorted(self.stops):
            if when <= moment and self.instances.get(revision, 0) > 0:
                self.instances[revision] -= 1
                self.stops.remove((when, revision))

    # --- the APIs ---
    def routes(self) -> list[Route]:
        return [
            Route("/v2/projects/{project}/locations/{location}/services/{service}", self.get_service,
                  methods=["GET"]),
            Route("/v3/projects/{project}/timeSeries", self.list_time_series, methods=["GET"]),
        ]

    def _wrap(self, endpoint: Handler) -> Handler:
        async def authorized(request: Request) -> Response:
            if self.bearer_token is not None and request.headers.get("authorization") != f"Bearer {self.bearer_token}":
                return google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
            return await endpoint(request)

        return super()._wrap(authorized)

    async def get_service(self, request: Request) -> Response:
        p = request.path_params
        if (p["project"], p["location"], p["service"]) != (self.project, self.region, self.service):
            return google_error(404, "NOT_FOUND", f"Resource '{p['service']}' of kind 'SERVICE' in region "
                                                  f"'{p['location']}' in project '{p['project']}' does not exist.")
        scaling = {k: v for k, v in self.scaling.items() if v not in (0, None)}  # proto3 JSON omits defaults
        body = {"name": f"projects/{self.project}/locations/{self.region}/services/{self.service}",
                "updateTime": rfc3339(self.update_time), "scaling": scaling,
                "terminalCondition": {"type": "Ready", "state": "CONDITION_RECONCILING" if self.reconciling
                                      else "CONDITION_SUCCEEDED"},
                "latestReadyRevision": f"projects/{self.project}/locations/{self.region}/revisions/{self.revision}"}
        return JSONResponse({**body, **({"reconciling": True} if self.reconciling else {})})

    def _filter(self, text: str) -> dict[str, str] | None:
        terms: dict[str, str] = {}
        for part in re.split(r"\s+AND\s+", text.strip()):
            match = _TERM.match(part)
            if match is None or match[1] not in _FILTER_KEYS:
                return None
            terms[match[1]] = match[2]
        return terms if terms.get("metric.type") == METRIC else None

    async def list_time_series(self, request: Request) -> Response:
        q = request.query_params
        if request.path_params["project"] != self.project:
            return google_error(403, "PERMISSION_DENIED", "Permission monitoring.timeSeries.list denied")
        terms = self._filter(q.get("filter", ""))
        if terms is None:
            return google_error(400, "INVALID_ARGUMENT", f"Field filter had an invalid value: {q.get('filter')!r}")
        if "interval.endTime" not in q:
            return google_error(400, "INVALID_ARGUMENT", "Field interval.endTime had an invalid value")
        end = _parse_time(q["interval.endTime"])
        start = _parse_time(q.get("interval.startTime", q["interval.endTime"]))
        visible_until = min(end, self.now - timedelta(seconds=VISIBLE_AFTER_SECONDS))
        wanted = (terms.get("resource.labels.service_name", self.service) == self.service
                  and terms.get("resource.labels.location", self.region) == self.region
                  and terms.get("resource.type", "cloud_run_revision") == "cloud_run_revision")
        series: dict[tuple[str, str], list[Sample]] = {}
        for sample in self.samples if wanted else []:
            if start <= sample.at <= visible_until:
                series.setdefault((sample.revision, sample.state), []).append(sample)
        listed = [self._series(revision, state, points) for (revision, state), points in sorted(series.items())]
        offset = int(q.get("pageToken") or 0)
        page = listed[offset:offset + self.max_page_size]
        more = offset + self.max_page_size < len(listed)
        return JSONResponse({"timeSeries": page, **({"nextPageToken": str(offset + self.max_page_size)}
                                                     if more else {}), "unit": "1"})

    def _series(self, revision: str, state: str, points: list[Sample]) -> dict[str, Any]:
        return {
            "metric": {"type": METRIC, "labels": {"state": state}},
            "resource": {"type": "cloud_run_revision", "labels": {
                "project_id": self.project, "service_name": self.service, "revision_name": revision,
                "location": self.region, "configuration_name": self.service}},
            "metricKind": "GAUGE", "valueType": "INT64",
            "points": [{"interval": {"startTime": rfc3339(p.at), "endTime": rfc3339(p.at)},
                        "value": {"int64Value": str(p.value)}} for p in sorted(points, key=lambda p: p.at,
                                                                                reverse=True)],
        }
