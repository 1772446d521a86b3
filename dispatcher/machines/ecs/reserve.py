"""ECS Fargate with a warm reserve: idle tasks tagged idle, re-tagged with the session on claim.

A reserve task is RunTask'ed with no session values: `startedBy` = `vf-reserve` (a fixed marker,
because `startedBy` cannot change after RunTask and ListTasks filters on nothing else that we
set), tag `voicefleet:idle` = bot id, and environment overrides naming only the channel URL, the
bot id, the image and `BOT_CHANNEL_TOKEN`: the credential issued for this bot id alone
(dispatcher/channel/credentials.py), never the deployment secret, which no task definition holds.
A claim is TagResource (session id, body digest, claim time, transport, in one call) then
UntagResource of the idle tag, then one DescribeTasks for the answer: 3 calls. Until the idle tag
is gone the session tag already wins, so `idle_machines` never offers a half-claimed task.

Look-ups without a cache (another replica, the reaper): a claimed task is not `startedBy` its
session, so `status` adds ListTasks(startedBy=vf-reserve) + one DescribeTasks(include TAGS) per
100 reserve-started running tasks (idle or claimed) when ListTasks(startedBy=session) is empty.
`list` needs nothing more: it reads the family's tasks, whose session tag is what counts.
"""

from __future__ import annotations

import time
from typing import Any

from botchannel.contract import CHANNEL_TOKEN_VARIABLE, CHANNEL_URL_VARIABLE, IMAGE_VARIABLE, MACHINE_ID_VARIABLE
from dispatcher.machines.base import IdleMachine, LaunchResult, LaunchSpec, MachinesError
from dispatcher.machines.cells import CellTurnedAway
from dispatcher.machines.ecs.credentials import KeySource
from dispatcher.machines.ecs.json_api import AwsError
from dispatcher.machines.ecs.provider import (
    RESERVE_STARTED_BY,
    TAG_CREATED,
    TAG_DIGEST,
    TAG_RELEASE,
    TAG_SESSION,
    TAG_TRANSPORT,
    EcsMachines,
    EcsSettings,
    quota_code,
    to_machine,
)
from dispatcher.outbound.provider_errors import refusal
from dispatcher.outbound.ratelimit import Rate
from dispatcher.recent import Recent
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.store.coordination import CreateLimits

TAG_IDLE = "voicefleet:idle"
_GONE = {"STOPPED", "DELETED", "DEPROVISIONING", "STOPPING"}


def _tags(task: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in task.get("tags") or []}


def _is_idle(task: dict[str, Any]) -> bool:
    tags = _tags(task)
    return (TAG_IDLE in tags and TAG_SESSION not in tags and task.get("desiredStatus") != "STOPPED"
            and task.get("lastStatus") not in _GONE)


class EcsWarmMachines(EcsMachines):
    def __init__(self, settings: EcsSettings, *, channel_url: str, transport: str = "daily",
                 coordination: CreateLimits, credentials: KeySource | None = None, cell: str | None = None,
                 reports: str | None = None) -> None:
        """`credentials`, `cell`: one cell's account of several (ecs/cell_reserve.py); `reports`: what its
        idle bots report as their image (the deployment's task definition, the same in every cell;
        None: the one they run)."""
        super().__init__(settings, coordination, credentials=credentials, cell=cell)
        self.channel_url = channel_url
        # Idle bots serve the deployment's default transport (a Daily bot cannot take a WebRTC
        # session): its task definition, which (family:revision or ARN) also fixes the image.
        self.transport = transport
        self._runs = settings.task_definition_for(transport)  # this account's own
        self.bot_image = reports or self._runs
        self._idle_arns: Recent[str, str] = Recent()  # bot id → task ARN (launched by this replica)

    @property
    def create_rate(self) -> Rate:
        return self.settings.run_task_rate

    def reported_image(self, image: str | None) -> str:
        """What an idle bot launched from `image` (a release's task definition) says in its hello."""
        return image or self.bot_image

    def _idle_params(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                     release: str = DEFAULT_RELEASE) -> dict[str, Any]:
        s = self.settings
        env = {CHANNEL_URL_VARIABLE: self.channel_url, MACHINE_ID_VARIABLE: bot_id,
               IMAGE_VARIABLE: self.reported_image(image), "BOT_TRANSPORT": self.transport}
        if channel_token is not None:  # this bot's own credential (the deployment secret stays here)
            env[CHANNEL_TOKEN_VARIABLE] = channel_token
            env.update(self.identity_environment())
        return {
            "cluster": s.cluster,
            # A release's task definition revision (in a cell: that account's own for it).
            "taskDefinition": self.settings.release_task_definition(image) if image else self._runs,
            "count": 1,  # never a batch: each task's overrides carry its own credential (provider.py)
            "clientToken": bot_id,  # a retried RunTask returns the same task, never a second one
            "startedBy": RESERVE_STARTED_BY,
            **self._placement(),
            "overrides": {"containerOverrides": [
                {"name": s.container_name, "environment": [{"name": k, "value": v} for k, v in env.items()]}
            ]},
            # The release tag stays through a claim (which adds the session's tags): the session is of it.
            "tags": [{"key": TAG_IDLE, "value": bot_id}, {"key": TAG_CREATED, "value": str(int(time.time()))},
                     {"key": TAG_RELEASE, "value": release}],
            "propagateTags": "TASK_DEFINITION",
        }

    async def launch_idle(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                          release: str = DEFAULT_RELEASE) -> None:
        await self.creates.idle_turn()  # the token the reserve's refill took (dispatcher/machines/creates.py)
        await self.run_idle(bot_id, channel_token, image=image, release=release)

    async def run_idle(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                       release: str = DEFAULT_RELEASE) -> None:
        """The reserve task's RunTask, its token already taken. In a cell, throttling or no room
        turns it away at once (`CellTurnedAway`): the caller drains the cell."""
        params = self._idle_params(bot_id, channel_token, image=image, release=release)
        try:
            result = await (self._run_in_cell(params, turn_away=True) if self.cell
                            else self._call("RunTask", **params))
        except AwsError as exc:
            raise self.refused_run(exc, image, release) from None
        if not result.get("tasks"):
            failure = (result.get("failures") or [{}])[0]
            if self.cell and (code := quota_code(str(failure.get("reason")))) is not None:
                raise CellTurnedAway("ecs_capacity", f"RunTask placed no reserve task: {code}", retry_after=10.0)
            message = f"RunTask placed no reserve task: {failure.get('reason')}"
            raise refusal(MachinesError, "ecs", None, message, capacity_retry_after=10.0)
        self._idle_arns[bot_id] = str(result["tasks"][0]["taskArn"])

    async def _reserve_tasks(self) -> list[dict[str, Any]]:
        """Running tasks started as reserve tasks, idle or claimed: 1 ListTasks (per page of 100)
        + 1 DescribeTasks per 100 tasks."""
        return await self._describe(await self._list_arns(startedBy=RESERVE_STARTED_BY))

    async def holds_idle(self, bot_id: str) -> bool:
        """Whether this account runs `bot_id`'s idle reserve task (a cell of several: cell_reserve.py)."""
        return await self._idle_arn(bot_id) is not None

    async def _idle_arn(self, bot_id: str) -> str | None:
        if (arn := self._idle_arns.get(bot_id)) is not None:
            return arn
        for task in await self._reserve_tasks():
            if _is_idle(task) and _tags(task)[TAG_IDLE] == bot_id:
                return str(task["taskArn"])
        return None

    async def adopt(self, bot_id: str, spec: LaunchSpec) -> LaunchResult:
        arn = await self._idle_arn(bot_id)
        if arn is None:
            raise MachinesError("reserve_bot_gone", f"reserve task {bot_id} is gone or already claimed")
        # Kept until the claim is answered: a re-tag may act and lose its answer, and a task tagged with
        # the session is no longer listed idle, so a failed claim's retirement stops it by this ARN.
        self._idle_arns[bot_id] = arn
        tags = [{"key": TAG_SESSION, "value": spec.session_id}, {"key": TAG_DIGEST, "value": spec.body_digest},
                {"key": TAG_CREATED, "value": str(int(time.time()))},
                *([{"key": TAG_TRANSPORT, "value": spec.transport}] if spec.transport else [])]
        await self._ecs("TagResource", resourceArn=arn, tags=tags)
        await self._ecs("UntagResource", resourceArn=arn, tagKeys=[TAG_IDLE])
        described = await self._describe([arn])
        if not described:
            raise MachinesError("reserve_bot_gone", f"claimed reserve task {bot_id} is gone")
        self._idle_arns.pop(bot_id, None)
        self._arns[spec.session_id] = arn
        return LaunchResult(to_machine(described[0]), created=True, claimed=True)

    def task_proved(self, bot_id: str, task_arn: str) -> None:
        """The bot's hello proved `task_arn` (in this account): its claim and retirement go to that task,
        never to one a listing finds under its id (another's look-alike)."""
        self._idle_arns[bot_id] = task_arn

    async def retire(self, bot_id: str) -> None:
        arn = await self._idle_arn(bot_id)
        self._idle_arns.pop(bot_id, None)
        if arn is not None:
            await self._ecs("StopTask", cluster=self.settings.cluster, task=arn, reason="voicefleet: reserve retired")

    async def idle_machines(self) -> list[IdleMachine]:
        idle = []
        for task in await self._reserve_tasks():
            if _is_idle(task):
                tags = _tags(task)
                idle.append(IdleMachine(tags[TAG_IDLE], to_machine(task).created_at))
        return idle

    async def _running_tasks_of(self, session_id: str) -> list[dict[str, Any]]:
        tasks = await super()._running_tasks_of(session_id)
        if tasks:
            return tasks
        return [t for t in await self._reserve_tasks() if _tags(t).get(TAG_SESSION) == session_id]

    def exit_detail(self, bot_id: str) -> str | None:
        """A cloud machine's exit is not seen here: a bot that never dialled in is only missing."""
        return None
