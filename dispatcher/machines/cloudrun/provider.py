"""`MACHINES=cloudrun`: one Cloud Run job execution per session (Admin API v2).

The stack makes one job per deployment (the bot image by digest, `maxRetries: 0` so a failed bot
is never re-run, its own service account). A session is `jobs.run` with overrides: the session's
env (bot_environment.py: with a channel, its id, transport and credential only), `taskCount: 1`
and `timeout` = max session + grace. The run's operation is done only when the execution ends,
so the start is read from the execution (`runningCount`, `startTime`); `executions.cancel` ends
it. `jobs.run` has no idempotency key: a run whose answer was lost (a timeout, a 5xx) may have
made an execution, so it is never run again; the job's executions are read for the session's
(cloudrun/executions.py) instead, adopted if it runs, cancelled if the start is refused
(machines/lost_creates.py), and one that lands later than a second start is cancelled where it
is seen. A session's start holds its lease across replicas (dispatcher/sessions/exclusive.py).

A release (dispatcher/releases/) is a job of its own (the stack makes one per release, each with
its image): a session of it is a run of that job, and the deployment's executions are those of
its own job and of every job its releases name (`RELEASES`), each listed in turn: listing across
all jobs (`jobs/-`) would need the project-wide permission the dispatcher is never given.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any

from botchannel.contract import IDENTITY_VARIABLE
from dispatcher.channel.access import ChannelAccess
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine, MachinesError
from dispatcher.machines.bot_environment import SESSION_ID, bot_environment
from dispatcher.machines.cells import CellTurnedAway
from dispatcher.machines.cloudrun.errors import QUOTA_RETRY_AFTER, failed, is_quota, status_of
from dispatcher.machines.cloudrun.executions import (
    BODY_DIGEST,
    EXECUTION_NONCE,
    OVERRIDE_NAMES,
    RELEASE,
    SESSION_TRANSPORT,
    execution_env,
    to_machine,
)
from dispatcher.machines.cloudrun.identity import CloudRunIdentity, RunningExecution
from dispatcher.machines.cloudrun.settings import CLOUD_PLATFORM_SCOPE
from dispatcher.machines.cloudrun.settings import DEFAULT_API_URL as DEFAULT_API_URL  # its importers name it here
from dispatcher.machines.cloudrun.settings import DEFAULT_RUN_RATE as DEFAULT_RUN_RATE  # so do theirs
from dispatcher.machines.cloudrun.settings import CloudRunSettings as CloudRunSettings  # and the settings too
from dispatcher.machines.creates import Creates
from dispatcher.machines.gce.auth import GceAuth
from dispatcher.machines.lost_creates import LostCreates
from dispatcher.machines.polling import poll_until_started
from dispatcher.machines.releases import ReleaseImageMissing
from dispatcher.outbound.http_client import HttpClient, HttpResponse
from dispatcher.outbound.retry import Backoff, create_request, provider_request, retry_after_of
from dispatcher.recent import Recent
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.store.coordination import CreateLimits

log = logging.getLogger("dispatcher.machines.cloudrun")

MAX_TIMEOUT_SECONDS = 168 * 3600  # a task's longest timeout (more than 24 h is Preview)
PAGE_SIZE = 100


class CloudRunMachines:
    name = "cloudrun"

    def __init__(self, settings: CloudRunSettings, *, coordination: CreateLimits, auth: GceAuth | None = None) -> None:
        self.settings = settings
        self.creates = Creates(self.name, coordination, settings.run_rate)  # every run, cold or reserve
        self._client = HttpClient(settings.api_url, timeout=settings.timeout)
        self._auth = auth or GceAuth(anonymous=settings.anonymous, scope=CLOUD_PLATFORM_SCOPE,
                                          provider=self.name)
        self._backoff = Backoff(attempts=5, base=0.5, cap=4.0, deadline=settings.retry_deadline)
        # session -> execution's resource name (`projects/…/jobs/J/executions/E`), as this replica knows it
        self._executions: Recent[str, str] = Recent()
        self._unlisted: set[str] = set()  # releases' jobs the API would not list (warned once each)
        self.lost = LostCreates(self.status, self.stop)  # a run whose answer was lost, reconciled
        self.identity = CloudRunIdentity(
            audience=settings.identity_audience, accounts=(settings.bot_service_account_id,),
            certs_url=settings.identity_certs_url, running=self._serves,
        )

    # --- calls ---
    async def _request(self, method: str, path: str, **kw: Any) -> HttpResponse:
        headers = await self._auth.headers()
        return await provider_request("cloudrun", self._client, method, path, backoff=self._backoff,
                                      error=MachinesError, headers=headers, **kw)

    def _execution_path(self, name: str) -> str:
        """An execution's resource name, or (a claim recorded before releases) its name in our own job."""
        return "/" + name.strip("/") if "/" in name else f"{self.settings.job_path}/executions/{name}"

    async def _get(self, name: str) -> dict[str, Any] | None:
        response = await self._request("GET", self._execution_path(name))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise failed(response, f"get execution {name}")
        return dict(response.json())

    async def executions(self) -> list[dict[str, Any]]:
        """Every execution of the deployment's jobs the API still holds (running ones and the last
        1000 completed of each)."""
        return [raw for job in self.settings.jobs for raw in await self._job_executions(job)]

    async def _job_executions(self, job: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        params: dict[str, str | int] = {"pageSize": PAGE_SIZE}
        while True:
            response = await self._request("GET", f"{job}/executions", params=params)
            if response.status_code in (403, 404) and job != self.settings.job_path:
                # A release's job that is gone, or that the dispatcher may not use: nothing of it runs
                # (a run of it would be refused alike); the deployment's other sessions still answer.
                if job not in self._unlisted:
                    self._unlisted.add(job)
                    log.warning("cannot list the executions of release job %s (HTTP %s)", job, response.status_code)
                return found
            if response.status_code == 404:  # the deployment's own job is not there (never made, deleted, misnamed)
                raise MachinesError("cloudrun_job_missing", f"Cloud Run has no job {job.strip('/')}: make it there "
                                    "(or name the job that exists in CLOUDRUN_JOB, or the cell's `job`)")
            if response.status_code != 200:
                raise failed(response, "list executions")
            page = response.json()
            found += [dict(e) for e in page.get("executions") or []]
            if not page.get("nextPageToken"):
                return found
            params = {**params, "pageToken": page["nextPageToken"]}

    async def _find(self, session_id: str) -> dict[str, Any] | None:
        """The session's execution: the one this replica remembers, else the one whose env names it."""
        if (name := self._executions.get(session_id)) is not None:
            if (raw := await self._get(name)) is not None:
                return raw
        mine = [raw for raw in await self.executions() if execution_env(raw).get(SESSION_ID) == session_id]
        if not mine:
            return None
        first, *duplicates = sorted(mine, key=lambda raw: str(raw.get("createTime", "")))
        for duplicate in duplicates:  # a lost run's execution that landed after all: one bot per session
            if not duplicate.get("completionTime"):
                log.warning("cancelling a second execution of session %s", session_id)
                await self.cancel(str(duplicate["name"]))
        self._executions[session_id] = str(first["name"])
        return first

    async def _machine(self, raw: Mapping[str, Any]) -> Machine:
        detail = await self._exit_detail(raw) if raw.get("failedCount") else None
        return to_machine(raw, exit_detail=detail)

    async def _exit_detail(self, raw: Mapping[str, Any]) -> str | None:
        """A failed execution's exit code, which only its task reports (`lastAttemptResult`)."""
        response = await self._request("GET", f"{self._execution_path(str(raw.get('name', '')))}/tasks")
        if response.status_code != 200:
            return None
        for task in response.json().get("tasks") or []:
            code = (task.get("lastAttemptResult") or {}).get("exitCode")
            if code is not None:
                return f"exit code {code}"
        return None

    # --- the run ---
    def run_body(self, env: Mapping[str, str], seconds: int) -> dict[str, Any]:
        """The run's overrides; a variable the dispatcher does not set itself is never sent."""
        if stray := sorted(set(env) - OVERRIDE_NAMES):
            raise MachinesError("cloudrun_rejected", f"refusing to set {', '.join(stray)} in a run's env: "
                                "only the dispatcher's own session variables go there")
        return {"overrides": {
            "containerOverrides": [{"name": self.settings.container,
                                    "env": [{"name": k, "value": v} for k, v in env.items()]}],
            "taskCount": 1,
            "timeout": f"{min(seconds, MAX_TIMEOUT_SECONDS)}s",
        }}

    def session_env(self, spec: LaunchSpec) -> dict[str, str]:
        env = bot_environment(spec)
        if spec.channel_token:  # the channel admits its hello with the execution's identity token only
            env[IDENTITY_VARIABLE] = "cloudrun"
            env[EXECUTION_NONCE] = self.nonce()
        env[BODY_DIGEST] = spec.body_digest
        if spec.transport:
            env[SESSION_TRANSPORT] = spec.transport
        env[RELEASE] = spec.release
        return env

    @staticmethod
    def nonce() -> str:
        """A run's own nonce, which its bot's hello carries (cloudrun/identity.py)."""
        return secrets.token_urlsafe(24)

    async def run(self, env: Mapping[str, str], seconds: int, *, image: str | None = None,
                  release: str = DEFAULT_RELEASE, turn_away: bool = False) -> dict[str, Any]:
        """`jobs.run` of the deployment's job, or of `image` (the job of the release `release`); the
        execution it made. A 429 made nothing and is retried (`turn_away`, one project of several:
        `CellTurnedAway` at once, for another to take the run); a run whose answer was lost (a
        timeout, a 5xx) may have made one, so it is never run again: it fails
        `cloudrun_unavailable`, and the launch looks for its execution (machines/lost_creates.py)."""
        job = self.settings.job_path if image is None else self.settings.path_of(image)
        body = self.run_body(env, seconds)
        headers = await self._auth.headers()
        response = await create_request("cloudrun", self._client, "POST", f"{job}:run", backoff=self._backoff,
                                        error=MachinesError,
                                        retry_throttled=lambda r: not turn_away and not is_quota(r),
                                        json=body, headers=headers)
        if turn_away and response.status_code == 429:  # every attempt refused: nothing was made
            quota = is_quota(response)
            raise CellTurnedAway("cloudrun_capacity" if quota else "cloudrun_throttled",
                                 "the project's quota of running executions" if quota else "RESOURCE_EXHAUSTED",
                                 retry_after=QUOTA_RETRY_AFTER if quota else retry_after_of(response.headers))
        if image is not None and response.status_code in (403, 404):
            # 404: no such job; 403: none the dispatcher may run (a missing job reads so to a caller
            # granted on some jobs only, "or it may not exist"). Either way: not this release's.
            raise ReleaseImageMissing(release, "Cloud Run", str(failed(response, f"run job {job}")),
                                      **self._remedy(job))
        if response.status_code != 200:
            raise failed(response, f"run job {job}")
        execution = (response.json().get("metadata") or {})
        if not execution.get("name"):
            raise MachinesError("cloudrun_rejected", f"run job {job}: no execution in the operation")
        return dict(execution)

    def _remedy(self, job: str) -> dict[str, str]:
        """In a cell (CLOUDRUN_CELLS) no `pulumi up` makes a release's job: the operator makes it in the
        cell's project, as the stack's notes say (stacks/gcp/cell_jobs.py)."""
        if not self.settings.same_name_from:
            return {}
        return {"remedy": f"make its job {job.rsplit('/', 1)[-1]} in the cell's project {self.settings.project} "
                          f"({self.settings.region}) from the stack's, with the dispatcher's run grant on it, as "
                          "the stack's notes for cloudRunCells say"}

    # --- the contract ---
    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        return await self.lost.create(spec.session_id, lambda: self._launch(spec))

    async def _launch(self, spec: LaunchSpec) -> LaunchResult:
        if (existing := await self.existing(spec.session_id)) is not None:
            return existing
        await self.creates.cold_turn()  # ahead of the reserve's refills; refused past its max wait
        return await self.run_session(spec)

    async def existing(self, session_id: str) -> LaunchResult | None:
        """The session's execution, made already (`jobs.run` has no idempotency key: looked for first)."""
        raw = await self._find(session_id)
        return None if raw is None else LaunchResult(await self._machine(raw), created=False)

    async def run_session(self, spec: LaunchSpec, *, turn_away: bool = False) -> LaunchResult:
        """The session's run, its token taken (`turn_away`: `run`'s)."""
        execution = await self.run(self.session_env(spec), spec.max_session_seconds + self.settings.grace_seconds,
                                   image=spec.image, release=spec.release, turn_away=turn_away)
        self._executions[spec.session_id] = str(execution["name"])
        machine = to_machine(execution, session_id=spec.session_id)
        return LaunchResult(Machine(session_id=spec.session_id, machine_id=machine.machine_id, state=machine.state,
                                    created_at=machine.created_at or time.time(), body_digest=spec.body_digest,
                                    transport=spec.transport, release=spec.release), created=True)

    async def status(self, session_id: str) -> Machine | None:
        raw = await self._find(session_id)
        return None if raw is None else await self._machine(raw)

    async def wait_started(self, session_id: str, timeout: float) -> Machine:
        return await poll_until_started(self.status, session_id, timeout, self.settings.poll_seconds)

    async def cancel(self, name: str) -> bool:
        """`executions.cancel` of execution `name` (its resource name); False if the execution is
        gone. Cancelling a finished one changes nothing."""
        response = await self._request("POST", f"{self._execution_path(name)}:cancel", json={})
        if response.status_code == 404:
            return False
        if response.status_code == 400 and status_of(response) == "FAILED_PRECONDITION":
            return True  # it had finished already
        if response.status_code != 200:
            raise failed(response, f"cancel execution {name}")
        return True

    async def stop(self, session_id: str) -> bool:
        raw = await self._find(session_id)
        if raw is None:
            return False
        if raw.get("completionTime"):
            return True
        return await self.cancel(str(raw["name"]))

    async def list(self) -> list[Machine]:
        """The sessions' executions still running: an ended execution costs nothing and the API
        deletes the oldest past 1000 per job, so the reaper has nothing to remove."""
        return [await self._machine(raw) for raw in await self.executions()
                if execution_env(raw).get(SESSION_ID) and not raw.get("completionTime")]

    async def _serves(self, kind: str, subject: str, session_id: str | None = None) -> RunningExecution | None:
        """The execution launched for a credential's session, if it runs (cloudrun/identity.py)."""
        return self.read_here(await self.running_execution(subject) if kind == "session" else None)

    def read_here(self, raw: Mapping[str, Any] | None, cell: str | None = None) -> RunningExecution | None:
        """A running execution read in this project (`cell`'s, of CLOUDRUN_CELLS), with its bots' account."""
        return None if raw is None else RunningExecution(raw, self.settings.bot_service_account_id, cell)

    async def running_execution(self, session_id: str) -> dict[str, Any] | None:
        if (raw := await self._find(session_id)) is None:
            return None
        return raw if to_machine(raw).state.is_active else None

    async def aclose(self) -> None:
        await self.lost.aclose()
        await self._client.aclose()
        await self.identity.aclose()

    def attach_channel(self, access: ChannelAccess) -> None:
        """Nothing to attach: a Cloud Run bot finds the channel in its job's env (`BOT_CHANNEL_URL`),
        and its credential travels with each run."""

