"""`MACHINES=ecs`: one ECS task on Fargate per session (RunTask, DescribeTasks, StopTask).

Idempotency is ECS's own: `clientToken` = session id (per cluster, 24 h). A second RunTask for the
session with different parameters (a fresh bot token) gets `ConflictException` naming the
existing task, which is a replay. `startedBy` = session id finds the task from any replica.
The session's values (the Daily token among them) go in the container's `environment`
override, never in `command`. Calls go to ECS's JSON API over the aiohttp pool, signed here
(dispatcher/machines/ecs/json_api.py: boto3 cost ~1.2 ms of CPU and a thread hop per call), with a timeout and
our own bounded backoff for throttling and server errors.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from botchannel.contract import IDENTITY_VARIABLE
from dispatcher.channel.access import ChannelAccess
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine, MachinesError, MachineState
from dispatcher.machines.bot_environment import bot_environment
from dispatcher.machines.cells import CellTurnedAway
from dispatcher.machines.creates import Creates
from dispatcher.machines.ecs.credentials import KeySource
from dispatcher.machines.ecs.identity import EcsTaskIdentity
from dispatcher.machines.ecs.json_api import AwsError, AwsJsonApi
from dispatcher.machines.ecs.settings import (
    DEFAULT_RUN_TASK_RATE as DEFAULT_RUN_TASK_RATE,  # its importers name it here
)
from dispatcher.machines.ecs.settings import EcsSettings as EcsSettings  # and the settings too
from dispatcher.machines.ecs.settings import parse_capacity_providers as parse_capacity_providers  # so do theirs
from dispatcher.machines.ecs.settings import sts_endpoint
from dispatcher.machines.lost_creates import LostCreates
from dispatcher.machines.polling import poll_until_started
from dispatcher.machines.releases import ReleaseImageMissing
from dispatcher.outbound.provider_errors import refusal
from dispatcher.outbound.retry import Backoff, Transient, gave_up, with_retries
from dispatcher.recent import Recent
from dispatcher.store.coordination import CreateLimits

# botocore resolves the credentials (and its DEBUG log would print them being fetched): whatever
# LOG_LEVEL says, botocore never logs below INFO.
logging.getLogger("botocore").setLevel(logging.INFO)

ECS_TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113"  # botocore's ECS model, `targetPrefix`
OVERRIDES_MAX = 8192  # characters of `overrides` JSON RunTask accepts
TAG_SESSION, TAG_DIGEST, TAG_CREATED = "voicefleet:session", "voicefleet:body-digest", "voicefleet:created-at"
# One id per launch call: retries inside the call send identical parameters (ECS returns the
# original task), while another launch of the session differs and gets ConflictException, so
# `created` is told apart from a replay.
TAG_LAUNCH = "voicefleet:launch-id"
TAG_TRANSPORT = "voicefleet:transport"  # "daily" or "webrtc" (absent on older tasks: daily)
TAG_RELEASE = "voicefleet:release"  # the session's release (absent on tasks older than releases)
# The warm reserve's tasks' `startedBy` (ecs/reserve.py; ECS allows up to 36 characters): here, so
# the task identity check tells a reserve task from a session's.
RESERVE_STARTED_BY = "vf-reserve"
_STARTING = {"PROVISIONING", "PENDING", "ACTIVATING"}


def to_machine(task: Mapping[str, Any]) -> Machine:
    tags = {t["key"]: t["value"] for t in task.get("tags") or []}
    last = str(task.get("lastStatus", ""))
    codes = [c.get("exitCode") for c in task.get("containers") or [] if c.get("exitCode") is not None]
    stop_code = task.get("stopCode")
    detail = None
    if last in _STARTING:
        state = MachineState.STARTING
    elif last == "RUNNING" and task.get("desiredStatus") != "STOPPED":
        state = MachineState.STARTED
    elif stop_code == "TaskFailedToStart" or any(codes):
        state = MachineState.FAILED
        detail = f"exit code {max(codes)}" if any(codes) else str(task.get("stoppedReason") or stop_code)
    else:  # DEACTIVATING … STOPPED, DELETED: the session is over (or being stopped)
        state = MachineState.ENDED
        if stop_code == "SpotInterruption":  # Fargate Spot took the capacity back mid-call
            state, detail = MachineState.FAILED, "fargate spot interruption"
    created = task.get("createdAt")  # epoch seconds on the wire (botocore made it a datetime)
    try:
        created_at = float(tags[TAG_CREATED])
    except (KeyError, ValueError):
        created_at = created.timestamp() if isinstance(created, datetime) else float(created or 0.0)
    return Machine(
        session_id=tags.get(TAG_SESSION, str(task.get("startedBy", ""))),
        machine_id=str(task["taskArn"]),
        state=state,
        created_at=created_at,
        body_digest=tags.get(TAG_DIGEST),
        detail=detail,
        transport=tags.get(TAG_TRANSPORT),
        release=tags.get(TAG_RELEASE),
    )


class EcsMachines:
    name = "ecs"

    def __init__(self, settings: EcsSettings, coordination: CreateLimits, *, credentials: KeySource | None = None,
                 cell: str | None = None) -> None:
        """`credentials`: the keys calls are signed with (None: the credential chain's); `cell`: this
        provider is one cell of several (ecs/cells.py), whose RunTask throttling and quota answers
        turn the launch away at once (`CellTurnedAway`), for another cell to take it."""
        self.settings = settings
        self.cell = cell
        # Every RunTask, a session's or the reserve's, takes its token from the deployment's one
        # count of the RunTask rate (this process's when there is no store: LocalCoordination).
        self.creates = Creates(self.name, coordination, settings.run_task_rate)
        self.lost = LostCreates(self.status, self.stop)  # a create whose answer was lost, reconciled
        # A bot's hello must carry its task role's presigned GetCallerIdentity, whose STS session
        # names the task launched for its credential (ecs/identity.py): the credential in the
        # task's overrides, readable with ecs:DescribeTasks, opens nothing from elsewhere.
        self.identity = EcsTaskIdentity(
            region=settings.region, cluster=settings.cluster, container=settings.container_name,
            endpoint=settings.sts_endpoint_url or sts_endpoint({}, settings.region), roles=settings.bot_task_roles,
            describe=self._describe_for_identity, reserve_marker=RESERVE_STARTED_BY,
            audience=settings.identity_audience,
        )
        self._api = AwsJsonApi(
            service="ecs",
            target_prefix=ECS_TARGET_PREFIX,
            region=settings.region,
            endpoint=settings.endpoint_url,
            timeout=settings.read_timeout,
            connect_timeout=settings.connect_timeout,
            credentials=credentials,
        )
        self._backoff = Backoff(attempts=5, base=0.2, cap=2.0, deadline=settings.retry_deadline)
        self._arns: Recent[str, str] = Recent()  # session id -> task ARN; a cache, the tags are the record

    async def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        """`operation` with bounded retries of throttling, server errors and lost answers; an
        `AwsError` (a refusal) is the caller's to map."""
        try:
            return await with_retries(lambda: self._api.call(operation, params), self._backoff)
        except Transient as exc:
            raise _gave_up(exc) from None

    def _run_task_params(self, spec: LaunchSpec) -> dict[str, Any]:
        s = self.settings
        env = {**bot_environment(spec), **(self.identity_environment() if spec.channel_token else {})}
        overrides = {
            "containerOverrides": [
                {"name": s.container_name, "environment": [{"name": k, "value": v} for k, v in env.items()]}
            ]
        }
        if len(json.dumps(overrides)) > OVERRIDES_MAX:
            raise MachinesError("spec_too_large", f"ECS overrides exceed {OVERRIDES_MAX} characters")
        return {
            "cluster": s.cluster,
            # The session's release's task definition revision; None: the deployment's own.
            # (in a cell: that account's own for the release, ECS_CELLS `task_definitions`).
            "taskDefinition": s.release_task_definition(spec.image) if spec.image else s.task_definition_for(
                spec.transport),
            # One task per call, never a batch of up to 10: RunTask applies one `overrides` to every
            # task of a call, and each machine's overrides carry its own channel credential (and a
            # session's its own values), so a batch would hand several machines one credential.
            "count": 1,
            "clientToken": spec.session_id,
            "startedBy": spec.session_id,
            **self._placement(),
            "overrides": overrides,
            "tags": [
                {"key": TAG_SESSION, "value": spec.session_id},
                {"key": TAG_DIGEST, "value": spec.body_digest},
                {"key": TAG_CREATED, "value": str(int(time.time()))},
                {"key": TAG_LAUNCH, "value": uuid.uuid4().hex},
                *([{"key": TAG_TRANSPORT, "value": spec.transport}] if spec.transport else []),
                {"key": TAG_RELEASE, "value": spec.release},
            ],
            "propagateTags": "TASK_DEFINITION",  # the stack's tags (env, owner) reach the task
        }

    def identity_environment(self) -> dict[str, str]:
        """With a channel credential, the bot proves its task (bot/identity.py), signing for this
        region's STS (Fargate sets AWS_REGION too; named here so the two cannot differ)."""
        return {IDENTITY_VARIABLE: "ecs", "AWS_REGION": self.settings.region}

    def _placement(self) -> dict[str, Any]:
        """Where every bot task runs: capacity providers and the awsvpc network."""
        s = self.settings
        return {
            "capacityProviderStrategy": list(s.capacity_providers),
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": list(s.subnets),
                    "securityGroups": list(s.security_groups),
                    "assignPublicIp": s.assign_public_ip,
                }
            },
        }

    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        return await self.lost.create(spec.session_id, lambda: self._launch(spec))

    async def _launch(self, spec: LaunchSpec) -> LaunchResult:
        params = self._run_task_params(spec)  # a spec too large is refused before a token is spent
        await self.creates.cold_turn()  # ahead of the reserve's refills; refused past its max wait
        return await self.run(spec, params)

    async def run(self, spec: LaunchSpec, params: dict[str, Any] | None = None, *,
                  turn_away: bool = True) -> LaunchResult:
        """The session's RunTask (`params`: its parameters, when already built), its launch token
        already taken. A cell's throttling turns the launch away at once only with `turn_away`: the
        last open cell retries it with backoff, as one account does."""
        params = params if params is not None else self._run_task_params(spec)
        try:
            result = await (self._run_in_cell(params, turn_away=turn_away) if self.cell
                            else self._call("RunTask", **params))
        except AwsError as exc:
            if exc.code == "ConflictException":  # this session's token, other params
                existing = await self.status(spec.session_id)
                if existing is not None:
                    return LaunchResult(existing, created=False)
            raise self.refused_run(exc, spec.image, spec.release) from None
        if not result.get("tasks"):
            failure = (result.get("failures") or [{}])[0]
            if self.cell and (code := quota_code(str(failure.get("reason")))) is not None:
                raise CellTurnedAway("ecs_capacity", f"RunTask placed no task: {code}", retry_after=10.0)
            # e.g. RESOURCE:ENI / capacity: a retry a little later may well succeed
            message = f"RunTask placed no task: {failure.get('reason')}"
            raise refusal(MachinesError, "ecs", None, message, capacity_retry_after=10.0)
        machine = to_machine(result["tasks"][0])
        self._arns[spec.session_id] = machine.machine_id
        return LaunchResult(machine, created=True)

    async def _run_in_cell(self, params: dict[str, Any], *, turn_away: bool) -> dict[str, Any]:
        """RunTask in one cell. Its throttling turns the launch away at once (`turn_away`: another
        cell takes it) only while every attempt was refused: once one may have reached ECS (its
        answer lost, or a 5xx), the task may exist here, so the launch stays in this cell, retried
        with the same clientToken, and if it still fails it is `ecs_unavailable` (looked for here,
        never launched elsewhere: dispatcher/machines/lost_creates.py)."""
        reached = False

        async def attempt() -> dict[str, Any]:
            nonlocal reached
            try:
                result = await self._api.call("RunTask", params)
            except Transient as exc:
                if exc.status != 429:
                    reached = True
                elif turn_away and not reached:
                    # Its code alone ("ThrottlingException"): the reason is shown to callers and operators.
                    code = str(exc).rsplit(": ", 1)[-1]
                    raise CellTurnedAway("ecs_throttled", code, retry_after=exc.retry_after) from None
                raise
            except AwsError as exc:  # a refusal after a lost answer: the first attempt may still have run
                if reached and exc.code != "ConflictException":  # (a conflict names that task: the caller's)
                    raise MachinesError("ecs_unavailable", f"ECS RunTask after an answer was lost: {exc}",
                                        retry_after=1.0) from None
                raise
            if reached and not result.get("tasks"):  # an earlier attempt may still have made the task
                raise MachinesError("ecs_unavailable", "ECS RunTask placed no task after an answer was lost",
                                    retry_after=1.0)
            return result

        try:
            return await with_retries(attempt, self._backoff)
        except Transient as exc:
            raise _gave_up(exc) from None

    @staticmethod
    def refused_run(exc: AwsError, image: str | None, release: str) -> MachinesError:
        """A refused RunTask; for a release's own task definition that ECS cannot run (never
        registered, or deregistered since: INACTIVE), the error names the release."""
        if image is not None and _no_task_definition(exc):
            return ReleaseImageMissing(release, "ECS", f"ECS cannot run task definition {image}: {exc}")
        return _refusal(exc)

    async def _describe(self, arns: list[str]) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = []
        for i in range(0, len(arns), 100):  # DescribeTasks takes at most 100 tasks
            result = await self._ecs(
                "DescribeTasks", cluster=self.settings.cluster, tasks=arns[i : i + 100], include=["TAGS"]
            )
            tasks += result.get("tasks", [])
        return tasks

    async def _describe_for_identity(self, arns: list[str], account: str) -> list[dict[str, Any]]:
        """The identity check's DescribeTasks: one account's (its task's ARN names it, checked there)."""
        return await self._describe(arns)

    async def _list_arns(self, **filters: str) -> list[str]:
        """Every page of one ListTasks query. ListTasks shows tasks whose desired status is
        RUNNING unless `desiredStatus` says otherwise, and `startedBy` must be its only filter
        (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListTasks.html)."""
        arns: list[str] = []
        params: dict[str, Any] = {"cluster": self.settings.cluster, **filters}
        while True:
            page = await self._ecs("ListTasks", **params)
            arns += page.get("taskArns", [])
            if not page.get("nextToken"):
                return arns
            params["nextToken"] = page["nextToken"]

    async def _family_arns(self) -> list[str]:
        """This deployment's tasks, running and recently stopped (ECS keeps those about an hour)."""
        arns: list[str] = []
        for family in self.settings.families:
            arns += await self._list_arns(family=family)
            arns += await self._list_arns(family=family, desiredStatus="STOPPED")
        return arns

    async def _ecs(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            return await self._call(operation, **params)
        except AwsError as exc:
            raise _refusal(exc) from None

    async def status(self, session_id: str) -> Machine | None:
        arn = self._arns.get(session_id)
        tasks = await self._describe([arn]) if arn else []
        if not tasks:  # another replica launched it, or DescribeTasks is not consistent yet
            tasks = await self._running_tasks_of(session_id)
        if not tasks:  # startedBy finds running tasks only; a stopped one is among the family's
            stopped = [
                arn
                for family in self.settings.families
                for arn in await self._list_arns(family=family, desiredStatus="STOPPED")
            ]
            tasks = [t for t in await self._describe(stopped) if to_machine(t).session_id == session_id]
        machines = sorted((to_machine(t) for t in tasks), key=lambda m: (m.state.is_active, m.created_at))
        if not machines:
            return None
        self._arns[session_id] = machines[-1].machine_id
        return machines[-1]

    async def _running_tasks_of(self, session_id: str) -> list[dict[str, Any]]:
        """The session's running tasks without a cache: `startedBy` = session id (a cold launch).
        The warm reserve (ecs/reserve.py) also looks among the tasks it started idle."""
        return await self._describe(await self._list_arns(startedBy=session_id))

    async def wait_started(self, session_id: str, timeout: float) -> Machine:
        return await poll_until_started(self.status, session_id, timeout, self.settings.poll_seconds)

    async def stop(self, session_id: str) -> bool:
        machine = await self.status(session_id)
        if machine is None:
            return False
        if machine.state.is_active:
            reason = "voicefleet: session stopped"
            await self._ecs("StopTask", cluster=self.settings.cluster, task=machine.machine_id, reason=reason)
        return True

    async def list(self) -> list[Machine]:
        tasks = await self._describe(await self._family_arns())
        return [to_machine(t) for t in tasks if any(tag["key"] == TAG_SESSION for tag in t.get("tags") or [])]

    async def aclose(self) -> None:
        await self.lost.aclose()
        await self._api.aclose()
        await self.identity.aclose()

    def attach_channel(self, access: ChannelAccess) -> None:
        """Nothing to attach: An ECS task's bot finds the channel in its task's environment overrides
        (`BOT_CHANNEL_URL`), and its credential travels with each launch."""


def quota_failure(reason: str) -> bool:
    return quota_code(reason) is not None


def _gave_up(exc: Transient) -> MachinesError:
    """A call given up after its retries: `ecs_throttled` only when every try was throttled."""
    return MachinesError(gave_up("ecs", exc), f"ECS {exc.account()}", retry_after=exc.retry_after or 1.0)


def quota_code(reason: str) -> str | None:
    """RunTask's `failures[].reason` for want of capacity or a quota, which another account may have,
    as a short code of ours (what callers and /status are shown, never AWS's sentence):
    `RESOURCE:*` (CPU, MEMORY, ENI) as it is, Fargate's "Capacity is unavailable at this time", and
    "You've reached the limit on the number of tasks/vCPUs you can run concurrently"
    (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/api_failures_messages.html); None: neither."""
    if (resource := re.fullmatch(r"RESOURCE:[A-Z_]{1,20}", reason.strip())) is not None:
        return resource[0]
    if "capacity is unavailable" in reason.lower():
        return "CAPACITY_UNAVAILABLE"
    if "reached the limit" in reason.lower():
        return "TASK_LIMIT_REACHED"
    return None


def _no_task_definition(exc: AwsError) -> bool:
    """ECS's answers to RunTask for a task definition it cannot run: `ClientException` "Unable to
    describe task definition." (none by that name or revision) and `InvalidParameterException`
    "TaskDefinition is inactive" (deregistered)."""
    message = exc.message.lower()
    return ((exc.code == "ClientException" and "unable to describe task definition" in message)
            or (exc.code == "InvalidParameterException" and "taskdefinition is inactive" in message))


def _refusal(exc: AwsError) -> MachinesError:
    # AWS answers a denied call with HTTP 400 and a code saying so (aws_json.UNAUTHORIZED).
    return refusal(MachinesError, "ecs", 403 if exc.unauthorized else exc.status, str(exc))
