"""`MACHINES=gce`: one Compute Engine VM per session, from a Pulumi-managed instance template.

`instances.insert?sourceInstanceTemplate=…` with the instance name derived from the session id
(409 `alreadyExists` = this session's VM exists: an idempotent replay) and a `requestId` per
launch, so the client's own retries of one insert are one operation. The session's values are instance
**metadata** items read by the template's startup script; `scheduling.maxRunDuration` +
`instanceTerminationAction: DELETE` is the outside cap on the session (docs/design.md §1).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dispatcher.channel.access import ChannelAccess
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine, MachinesError, MachineState
from dispatcher.machines.bot_environment import gce_metadata_items
from dispatcher.machines.creates import Creates
from dispatcher.machines.gce.auth import GceAuth
from dispatcher.machines.gce.identity import GceInstanceIdentity
from dispatcher.machines.gce.labels import (
    IDLE_INFIX,
    LABEL_CLAIMED,
    LABEL_DIGEST,
    LABEL_RELEASE,
    LABEL_SESSION,
    LABEL_TRANSPORT,
    ClaimedVms,
)
from dispatcher.machines.gce.settings import DEFAULT_API_URL as DEFAULT_API_URL  # its importers name it here
from dispatcher.machines.gce.settings import DEFAULT_INSERT_RATE as DEFAULT_INSERT_RATE  # so do theirs
from dispatcher.machines.gce.settings import GceSettings as GceSettings  # and the settings too
from dispatcher.machines.lost_creates import LostCreates, found_after_conflict
from dispatcher.machines.polling import poll_until_started
from dispatcher.machines.releases import ReleaseImageMissing
from dispatcher.outbound.http_client import HttpClient, HttpError, HttpResponse
from dispatcher.outbound.provider_errors import refusal
from dispatcher.outbound.retry import (
    RETRYABLE_STATUSES,
    Backoff,
    Transient,
    gave_up,
    provider_request,
    retry_after_of,
    with_retries,
)
from dispatcher.store.coordination import CreateLimits

_STARTING = {"PROVISIONING", "STAGING"}
THROTTLE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
RATE_QUOTA_RETRY_AFTER = 60.0  # Google: "wait a minute then try your request again"
_STARTED = {"RUNNING", "REPAIRING"}



def to_machine(raw: Mapping[str, Any]) -> Machine:
    labels = raw.get("labels") or {}
    status = str(raw.get("status", ""))
    detail = None
    if status in _STARTING:
        state = MachineState.STARTING
    elif status in _STARTED:
        state = MachineState.STARTED
    else:  # STOPPING, STOPPED, SUSPENDING, SUSPENDED, TERMINATED: the VM is shutting down or off
        state, detail = MachineState.ENDED, f"instance {status.lower()}"
    try:
        created = datetime.fromisoformat(str(raw.get("creationTimestamp"))).timestamp()
    except ValueError:
        created = 0.0
    if str(labels.get(LABEL_CLAIMED, "")).isdigit():
        created = float(labels[LABEL_CLAIMED])
    return Machine(
        session_id=labels.get(LABEL_SESSION, ""),
        machine_id=str(raw.get("name")),
        state=state,
        created_at=created,
        body_digest=labels.get(LABEL_DIGEST),
        detail=detail,
        transport=labels.get(LABEL_TRANSPORT),
        release=labels.get(LABEL_RELEASE),
    )


def _error_reason(response: HttpResponse) -> str:
    try:
        errors = response.json()["error"].get("errors") or [{}]
        return str(errors[0].get("reason", ""))
    except (ValueError, KeyError, AttributeError, TypeError):
        return ""


def throttled(response: HttpResponse) -> bool:
    """A rate quota's answer: 403 `rateLimitExceeded` (https://cloud.google.com/compute/api-quota),
    or a 429. Nothing was made; the quota refills within the minute."""
    return response.status_code == 429 or (
        response.status_code == 403 and _error_reason(response) in THROTTLE_REASONS)


class GceRefused(MachinesError):
    """Compute Engine's own answer refused a call (not the dispatcher's sign-in, nor a lost answer):
    `status`, Google's `errors[0].reason` and its own message (`api_message`: the resource it names) say why
    (gce/cells.py drains a project, a region, a template's cells or one cell by them)."""

    def __init__(self, reason: str, message: str, *, status: int, api_reason: str, api_message: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(reason, message, retry_after=retry_after)
        self.status, self.api_reason, self.api_message = status, api_reason, api_message


class GceMachines:
    name = "gce"

    def __init__(
        self,
        settings: GceSettings,
        *,
        auth: GceAuth | None = None,
        coordination: CreateLimits,
    ) -> None:
        self.settings = settings
        # Every insert, a session's or the reserve's, takes its token from the deployment's one
        # count (this process's when there is no store: LocalCoordination).
        self.creates = Creates(self.name, coordination, settings.insert_rate)
        self.lost = LostCreates(self.status, self.stop)  # a create whose answer was lost, reconciled
        zone = f"{settings.api_url}/projects/{settings.project}/zones/{settings.zone}"
        self._client = HttpClient(zone, timeout=settings.timeout)
        self._auth = auth or GceAuth(anonymous=settings.anonymous)
        self._backoff = Backoff(attempts=5, base=0.5, cap=4.0, deadline=settings.retry_deadline)
        self._templates: dict[str, tuple[list[dict[str, str]], dict[str, str]]] = {}  # path → its items, labels
        self._claimed = ClaimedVms(self._request, self._failed)  # sessions on a claimed reserve VM
        # A bot's hello must carry its VM's identity token: its launch credential alone, readable
        # with the VM's metadata, admits nothing (docs/security.md).
        self.identity = GceInstanceIdentity(
            project=settings.project, zone=settings.zone, prefix=settings.prefix,
            audience=settings.identity_audience, certs_url=settings.identity_certs_url,
        )

    def instance_name(self, session_id: str) -> str:
        return f"{self.settings.prefix}-{session_id}"

    async def _request(self, method: str, path: str, **kw: Any) -> HttpResponse:
        headers = await self._auth.headers()
        return await provider_request(
            "gce", self._client, method, path, backoff=self._backoff, error=MachinesError, headers=headers, **kw)

    @staticmethod
    def _failed(response: HttpResponse, what: str) -> MachinesError:
        reason = _error_reason(response)
        try:
            message = str(response.json()["error"].get("message"))
        except (ValueError, KeyError, AttributeError, TypeError):
            message = f"HTTP {response.status_code}"
        said = f"Compute Engine refused to {what}: {message}"
        if throttled(response):  # a rate quota, not a missing grant: it refills within the minute
            return GceRefused("gce_throttled", said, status=response.status_code, api_reason=reason,
                              api_message=message,
                              retry_after=retry_after_of(response.headers) or RATE_QUOTA_RETRY_AFTER)
        # No capacity or quota in the zone: worth trying again later.
        capacity = "EXHAUSTED" in reason.upper() or "QUOTA" in reason.upper()
        error = refusal(MachinesError, "gce", response.status_code, said,
                        capacity_retry_after=30.0 if capacity else None)
        return GceRefused(error.reason, said, status=response.status_code, api_reason=reason,
                          api_message=message, retry_after=error.retry_after)

    def template_of(self, image: str | None) -> str:
        """The template to insert from: a release's (`image`), else the deployment's own."""
        return self.settings.template_path if image is None else self.settings.path_of(image)

    async def _template_parts(self, path: str, release: str | None = None
                              ) -> tuple[list[dict[str, str]], dict[str, str]]:
        """Template `path`'s own metadata items and labels, read once (a template never changes:
        a changed one has a new name). The insert sends them along with the session's:
        whether the API merges a request's `metadata`/`labels` with the template's or replaces
        them is undocumented (iac_review.md item 6), and either way the VM must keep the
        startup script and the image the template names. `release`: the release it is for, which
        a missing template is told by."""
        if path not in self._templates:
            response = await self._request("GET", f"{self.settings.api_url}/{path}")
            if response.status_code != 200:
                raise self._template_refused(response, f"read instance template {path}", release)
            properties = response.json().get("properties") or {}
            items = [dict(i) for i in (properties.get("metadata") or {}).get("items") or []]
            self._templates[path] = (items, dict(properties.get("labels") or {}))
        return self._templates[path]

    def _template_refused(self, response: HttpResponse, what: str, release: str | None) -> MachinesError:
        """A refused call naming a template; a release's that Compute Engine does not have (404
        `notFound`: deleted, or never made) is an error naming the release."""
        if release is not None and response.status_code == 404:
            return ReleaseImageMissing(release, "Compute Engine", f"Compute Engine refused to {what}: not found")
        return self._failed(response, what)

    def _insert_body(self, spec: LaunchSpec, template_items: list[dict[str, str]] | None = None,
                     template_labels: dict[str, str] | None = None) -> dict[str, Any]:
        session_items = gce_metadata_items(spec)
        own = {item["key"] for item in session_items}
        return {
            "name": self.instance_name(spec.session_id),
            "labels": {
                **(template_labels or {}),
                LABEL_SESSION: spec.session_id,
                LABEL_DIGEST: spec.body_digest,
                **({LABEL_TRANSPORT: spec.transport} if spec.transport else {}),
                **self.release_label(spec.release),
            },
            "metadata": {"items": [i for i in template_items or [] if i["key"] not in own] + session_items},
            "scheduling": self.scheduling(spec.max_session_seconds + self.settings.grace_seconds),
            **self.accelerators(),
        }

    @staticmethod
    def release_label(release: str) -> dict[str, str]:
        """The VM's release, as `to_machine` reads it back (a release name is a label value as it is)."""
        return {LABEL_RELEASE: release}

    def accelerators(self) -> dict[str, Any]:
        """An N1 VM's GPU, attached by the insert; a G2/A2/A3 machine type has its own (nothing to add)."""
        gpu = self.settings.gpu
        if gpu is None or not gpu.attached:
            return {}
        kind = f"projects/{self.settings.project}/zones/{self.settings.zone}/acceleratorTypes/{gpu.accelerator}"
        return {"guestAccelerators": [{"acceleratorType": kind, "acceleratorCount": self.settings.gpu_count}]}

    def scheduling(self, max_run_seconds: int) -> dict[str, Any]:
        """The whole block, not just what differs from the template: a request's `scheduling`
        replaces the template's (terraform-provider-google copies the template's only when the
        request has none), so a partial block would lose automaticRestart=false and a restarted VM
        would rejoin a finished session; and a request without one inherits the template's
        maxRunDuration, which is sized for a cold session. A VM with a GPU cannot live-migrate:
        Compute Engine refuses it unless host maintenance terminates it."""
        return {
            "maxRunDuration": {"seconds": str(max_run_seconds)},
            "instanceTerminationAction": "DELETE",
            "automaticRestart": False,
            "onHostMaintenance": "MIGRATE" if self.settings.gpu is None else "TERMINATE",
            "provisioningModel": "STANDARD",
        }

    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        return await self.lost.create(spec.session_id, lambda: self._launch(spec))

    async def _launch(self, spec: LaunchSpec) -> LaunchResult:
        await self._template_parts(self.template_of(spec.image), spec.release if spec.image is not None else None)
        await self.creates.cold_turn()  # ahead of the reserve's refills; refused past its max wait
        return await self.insert_session(spec)

    async def insert_session(self, spec: LaunchSpec, *, turn_away: bool = False) -> LaunchResult:
        """The session's insert, its token taken. `turn_away` (one project of several, gce/cells.py):
        a rate quota's answer to the first try is returned at once, unretried, for another project."""
        name = self.instance_name(spec.session_id)
        template = self.template_of(spec.image)
        release = spec.release if spec.image is not None else None
        template_items, template_labels = await self._template_parts(template, release)
        # One id per launch call: its own retries are one operation; another launch of the session
        # gets 409 alreadyExists (and so created=False).
        params = {"sourceInstanceTemplate": template, "requestId": str(uuid.uuid4())}
        response = await self._insert(params, self._insert_body(spec, template_items, template_labels),
                                      turn_away=turn_away)
        if response.status_code == 409 and _error_reason(response) == "alreadyExists":
            existing = await found_after_conflict("gce", f"instance {name}", self.status(spec.session_id))
            return LaunchResult(existing, created=False)
        if response.status_code != 200:
            raise self._template_refused(response, f"create instance {name} from {template}", release)
        # An accepted insert may still fail (no capacity, quota): the operation says so later,
        # and `status` finds it there (`_failed_insert`), so the session reads `failed`.
        machine = Machine(
            session_id=spec.session_id,
            machine_id=name,
            state=MachineState.STARTING,
            created_at=time.time(),
            body_digest=spec.body_digest,
            transport=spec.transport,
            release=spec.release,
        )
        return LaunchResult(machine, created=True)

    async def _insert(self, params: dict[str, str], body: dict[str, Any], *, turn_away: bool) -> HttpResponse:
        """`instances.insert`, retried with its one `requestId` (the same operation: idempotent) on a
        429, a 5xx or no answer. A refusal after a try that may have been served (no answer, a 5xx)
        is no proof that nothing was made: `gce_unavailable`, and the launch looks for the VM
        (machines/lost_creates.py), never sends it to another project."""
        headers = await self._auth.headers()
        served: list[Transient] = []

        async def once() -> HttpResponse:
            try:
                response = await self._client.request("POST", "/instances", params=params, json=body, headers=headers)
            except HttpError as exc:
                served.append(Transient(f"POST /instances: {exc}"))
                raise served[-1] from exc
            wait = retry_after_of(response.headers)
            if response.status_code == 429 and not (turn_away and not served):
                raise Transient("POST /instances: HTTP 429", retry_after=wait, status=429)
            if response.status_code in RETRYABLE_STATUSES and response.status_code != 429:
                served.append(Transient(f"POST /instances: HTTP {response.status_code}", retry_after=wait,
                                        status=response.status_code))
                raise served[-1]
            return response

        try:
            response = await with_retries(once, self._backoff)
        except Transient as exc:
            if exc.throttled:  # every try answered 429: nothing was made, the project's own answer
                raise GceRefused("gce_throttled", f"gce: {exc.account()}", status=429, api_reason="",
                                 retry_after=exc.retry_after or 1.0) from None
            raise MachinesError(gave_up("gce", exc), f"gce: {exc.account()}",
                                retry_after=exc.retry_after or 1.0) from None
        if served and response.status_code not in (200, 409):
            raise MachinesError("gce_unavailable", f"gce: {served[0]}, then HTTP {response.status_code}: the insert "
                                "may have been made", retry_after=1.0)
        return response

    async def status(self, session_id: str) -> Machine | None:
        name = self._claimed.name(session_id) or self.instance_name(session_id)
        response = await self._request("GET", f"/instances/{name}")
        if response.status_code == 404:
            if claimed := await self._claimed.find(session_id):
                return to_machine(claimed)
            return await self._failed_insert(session_id)
        if response.status_code != 200:
            raise self._failed(response, f"get instance {name}")
        return to_machine(response.json())

    async def _failed_insert(self, session_id: str) -> Machine | None:
        """No instance: was an insert refused after it was accepted? The zone's operations say."""
        name = self.instance_name(session_id)
        response = await self._request("GET", "/operations", params={"filter": f'targetLink eq ".*/instances/{name}"'})
        if response.status_code != 200:
            return None
        for op in response.json().get("items", []):
            if op.get("operationType") == "insert" and op.get("error"):
                errors = op["error"].get("errors") or [{}]
                return Machine(
                    session_id=session_id,
                    machine_id=name,
                    state=MachineState.FAILED,
                    created_at=time.time(),
                    detail=str(errors[0].get("code", "insert failed")),
                )
        return None

    async def wait_started(self, session_id: str, timeout: float) -> Machine:
        return await poll_until_started(self.status, session_id, timeout, self.settings.poll_seconds)

    async def stop(self, session_id: str) -> bool:
        """Delete, not stop: a stopped VM keeps its disk (and its bill), and is never reused."""
        name = self._claimed.name(session_id) or self.instance_name(session_id)
        response = await self._request("DELETE", f"/instances/{name}")
        if response.status_code == 404:
            claimed = await self._claimed.find(session_id)
            if claimed is None:
                return False
            name = str(claimed["name"])
            response = await self._request("DELETE", f"/instances/{name}")
            if response.status_code == 404:  # it went while we looked
                return False
        if response.status_code != 200:
            raise self._failed(response, f"delete instance {name}")
        return True

    async def list(self) -> list[Machine]:
        machines: list[Machine] = []
        params = {"filter": f"labels.{LABEL_SESSION}:*", "maxResults": "500"}
        # A session's VM is named for it, or (a claimed reserve VM) for its bot: IDLE_INFIX.
        pattern = re.compile(rf"^{re.escape(self.settings.prefix)}-([0-9a-f]{{24}}|{IDLE_INFIX}[a-z0-9-]+)$")
        while True:
            response = await self._request("GET", "/instances", params=params)
            if response.status_code != 200:
                raise self._failed(response, "list instances")
            page = response.json()
            machines += [to_machine(i) for i in page.get("items", []) if pattern.match(i.get("name", ""))]
            if not page.get("nextPageToken"):
                return machines
            params = {**params, "pageToken": page["nextPageToken"]}

    async def aclose(self) -> None:
        await self.lost.aclose()
        await self._client.aclose()
        await self.identity.aclose()

    def attach_channel(self, access: ChannelAccess) -> None:
        """Nothing to attach: A Compute Engine bot's bot finds the channel in the instance template's metadata
        (`BOT_CHANNEL_URL`), and its credential travels with each launch."""
