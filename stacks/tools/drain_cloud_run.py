"""The GCP drain's first step: wait until Cloud Run's last dispatcher instance is gone.

`drain: true` sets the service's scaling to MANUAL with 0 instances, but an instance still ending
(or one an unfinished rollout keeps) can launch reserve VMs while the drain sweeps, and a VM it
launches after the sweep's last empty listing would outlive the destroy. Nothing in Cloud Run's
Admin API v2 lists a service's instances: `services.get` says whether the drained configuration
is in force (`scaling.scalingMode` MANUAL, `manualInstanceCount` 0, not `reconciling`, since
`updateTime`), and Cloud Monitoring counts the instances:
`run.googleapis.com/container/instance_count` (GAUGE, resource `cloud_run_revision`, label `state`
active/idle), sampled every 60 s and visible up to 180 s later (Google's metrics list).

So the instances are gone when no series of the service reports one in its newest sample taken
since the change and within the last 60 + 180 s (a live instance has a newer visible sample than
that), and either every series that reported in the 240 s before the change has such a sample,
counting 0, or 240 s have passed since the change (an instance alive after it would have been
sampled and shown by then). Series are per revision and `state`, each sampled on its own clock: one
series' fresh 0 says nothing of another whose sample taken after the change is still in its 180 s
delay, so a 0 counts only for its own series.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dispatcher.outbound.http_client import HttpClient
from dispatcher.outbound.provider_errors import ProviderError, refusal
from dispatcher.outbound.retry import Backoff, provider_request

RUN_API_URL = "https://run.googleapis.com/v2"
MONITORING_API_URL = "https://monitoring.googleapis.com/v3"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
METRIC = "run.googleapis.com/container/instance_count"
SAMPLE_SECONDS, VISIBLE_AFTER_SECONDS = 60, 180
SILENCE = timedelta(seconds=SAMPLE_SECONDS + VISIBLE_AFTER_SECONDS)


class CloudRunError(ProviderError):
    """Cloud Run or Cloud Monitoring refused or failed a read."""


@dataclass(frozen=True)
class CloudRunTarget:
    project: str
    region: str
    service: str
    run_url: str = RUN_API_URL
    monitoring_url: str = MONITORING_API_URL
    anonymous: bool = False  # local fakes only

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any], env: Mapping[str, str]) -> CloudRunTarget:
        run_url = env.get("CLOUD_RUN_API_URL", "").rstrip("/") or RUN_API_URL
        monitoring_url = env.get("MONITORING_API_URL", "").rstrip("/") or MONITORING_API_URL
        overridden = run_url != RUN_API_URL and monitoring_url != MONITORING_API_URL
        cloudrun = env.get("MACHINES") == "cloudrun"  # the bots are a Cloud Run job's: CLOUDRUN_* name the project
        project, auth = (env["CLOUDRUN_PROJECT"], env.get("CLOUDRUN_AUTH")) if cloudrun else (env["GCE_PROJECT"],
                                                                                              env.get("GCE_AUTH"))
        return cls(project=project, region=str(outputs.get("region") or ""),
                   service=str(outputs.get("dispatcherService") or ""), run_url=run_url,
                   monitoring_url=monitoring_url, anonymous=overridden and auth == "none")


class DrainNotApplied(Exception):
    """The service is not scaled to zero: the operator must apply `drain: true` first."""


@dataclass(frozen=True)
class Reading:
    """What one look found: whether the last instance is gone, else what is still there."""

    gone: bool
    why: str


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def instances_reading(service: Mapping[str, Any], series: list[Mapping[str, Any]], now: datetime) -> Reading:
    """The rule above over a `services.get` body and `timeSeries.list`'s series since its change."""
    name = str(service.get("name", "")).rsplit("/", 1)[-1]
    scaling = service.get("scaling") or {}
    if scaling.get("scalingMode") != "MANUAL" or int(scaling.get("manualInstanceCount") or 0):
        raise DrainNotApplied(f"the Cloud Run service {name} is not scaled to zero ({scaling or 'AUTOMATIC'}): "
                              "`pulumi config set drain true` and `pulumi up` first")
    if service.get("reconciling"):
        return Reading(False, f"the Cloud Run service {name} is still rolling out its scaling to zero")
    since = _time(str(service["updateTime"]))
    fresh_after = max(since, now - SILENCE)
    remaining, unconfirmed = 0, 0
    for one in series:
        points = [(_time(p["interval"]["endTime"]), int(p["value"].get("int64Value", 0)))
                  for p in one.get("points", [])]
        newest = max(points, default=None)
        if newest is not None and newest[0] >= fresh_after:
            remaining += newest[1]
        elif any(since - SILENCE <= at < since for at, _ in points):
            unconfirmed += 1  # it reported before the change and has said nothing visible since
    if remaining:
        return Reading(False, f"the Cloud Run service {name} still has {remaining} instance(s)")
    if now - since >= SILENCE or (series and not unconfirmed):
        return Reading(True, "")
    return Reading(False, f"the Cloud Run service {name} has {unconfirmed or 'no'} instance count series "
                          "without a sample since it was scaled to zero "
                          f"({SILENCE.seconds} s pass before their silence says none is left)")


class CloudRunInstances:
    """Reads a Cloud Run service and its instance counts, with the dispatcher's retrying client."""

    def __init__(self, target: CloudRunTarget, *, timeout: float = 15.0) -> None:
        self.target = target
        self._client = HttpClient(timeout=timeout)
        self._backoff = Backoff(attempts=5, base=0.5, cap=4.0, deadline=30.0)
        self._credentials: Any = None

    async def reading(self, now: datetime) -> Reading:
        t = self.target
        service = await self._get(f"{t.run_url}/projects/{t.project}/locations/{t.region}/services/{t.service}",
                                  {}, f"read the Cloud Run service {t.service}")
        since = _time(str(service.get("updateTime") or _rfc3339(now)))
        # Within SILENCE of the change, from SILENCE before it: the series that reported then must
        # each report again. Later, only the last SILENCE matters.
        series = await self._series(since - SILENCE if now - since < SILENCE else now - SILENCE, now)
        return instances_reading(service, series, now)

    async def _series(self, start: datetime, end: datetime) -> list[Mapping[str, Any]]:
        t = self.target
        params = {
            "filter": f'metric.type = "{METRIC}" AND resource.type = "cloud_run_revision" AND '
                      f'resource.labels.service_name = "{t.service}" AND resource.labels.location = "{t.region}"',
            "interval.startTime": _rfc3339(start), "interval.endTime": _rfc3339(end)}
        found: list[Mapping[str, Any]] = []
        for _ in range(100):  # pages: a service has a handful of revisions x two states
            page = await self._get(f"{t.monitoring_url}/projects/{t.project}/timeSeries", params,
                                   f"read the instance counts of {t.service}")
            found += page.get("timeSeries", [])
            if not page.get("nextPageToken"):
                return found
            params = {**params, "pageToken": str(page["nextPageToken"])}
        raise CloudRunError("cloud_run_rejected", f"more than 100 pages of instance counts for {t.service}")

    async def _get(self, url: str, params: Mapping[str, str], what: str) -> Mapping[str, Any]:
        headers = await self._headers()
        response = await provider_request("cloud_run", self._client, "GET", url, backoff=self._backoff,
                                          error=CloudRunError, params=params, headers=headers)
        if response.status_code != 200:
            try:
                message = str(response.json()["error"]["message"])
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {response.status_code}"
            raise refusal(CloudRunError, "cloud_run", response.status_code, f"could not {what}: {message}")
        body: Mapping[str, Any] = response.json()
        return body

    async def _headers(self) -> dict[str, str]:
        if self.target.anonymous:
            return {}
        import google.auth
        import urllib3
        from google.auth.transport.urllib3 import Request

        if self._credentials is None:
            self._credentials, _ = await asyncio.to_thread(google.auth.default, scopes=[SCOPE])
        if not self._credentials.valid:
            request = Request(urllib3.PoolManager(timeout=10.0))  # type: ignore[no-untyped-call]
            await asyncio.to_thread(self._credentials.refresh, request)
        return {"Authorization": f"Bearer {self._credentials.token}"}

    async def aclose(self) -> None:
        await self._client.aclose()
