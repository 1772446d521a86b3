"""Cloud Run with a warm reserve: idle executions that wait on the channel, claimed in the store.

A reserve execution is a run of the same job with no session values: its env names its bot id
(`VOICEFLEET_IDLE_BOT`, and `BOT_MACHINE_ID`, the hello's machine id), its own credential and
execution nonce, and its `timeout` covers the longest idle wait plus a whole session. Its bot dials
the channel and waits. An execution cannot be re-tagged (a run's env is fixed), so a claim is
recorded in the coordination store, where every replica's look-up finds it: the bot's claim,
first wins (`cloudrun-reserve:<bot>`, so it is claimed once), then the session's record
(`cloudrun-claim:<session>`: the execution, the bot, when, the body's fingerprint and transport)
and the bot's (`cloudrun-bot:<bot>`, so the count of idle ones leaves it out). `status`, `stop`
and `list` read a claimed execution's session from them. The reserve's sweep cancels idle
executions (`retire`), taking the bot's claim first (`retired:<bot>`): a session that claimed it
in between keeps it. Each run, idle or cold, takes a token of the same run rate.

In a cell of several (CLOUDRUN_CELLS, cloudrun/cell_reserve.py) the records name the cell too, and a
cell reads only its own: another project's claim (or a look-alike execution there under a claimed bot's
id) is never taken for this project's session.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from botchannel.contract import CHANNEL_TOKEN_VARIABLE, IDENTITY_VARIABLE, IMAGE_VARIABLE, MACHINE_ID_VARIABLE
from dispatcher.machines.base import IdleMachine, LaunchResult, LaunchSpec, Machine, MachinesError
from dispatcher.machines.bot_environment import SESSION_ID
from dispatcher.machines.cloudrun.executions import EXECUTION_NONCE, IDLE_BOT, RELEASE, execution_env, to_machine
from dispatcher.machines.cloudrun.identity import RunningExecution
from dispatcher.machines.cloudrun.provider import MAX_TIMEOUT_SECONDS, CloudRunMachines, CloudRunSettings
from dispatcher.machines.gce.auth import GceAuth
from dispatcher.outbound.ratelimit import Rate
from dispatcher.recent import Recent
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.store.coordination import Coordination, FirstClaims, SessionValues

CLAIM, SESSION, BOT = "cloudrun-reserve:", "cloudrun-claim:", "cloudrun-bot:"
RETIRED = "retired:"  # the claim a retirement takes: no session can take the bot after it


def _name(raw: Mapping[str, Any]) -> str:
    """The execution's resource name (`projects/…/jobs/J/executions/E`): a release's is of its own job."""
    return str(raw.get("name", ""))


def _as_claimed(machine: Machine, claim: Mapping[str, Any], session_id: str) -> Machine:
    """A reserve execution as the machine of the session its claim record names."""
    return replace(machine, session_id=session_id, body_digest=claim.get("body_digest"),
                   transport=claim.get("transport") or None, created_at=float(claim["claimed_at"]))


async def bot_claim(holders: FirstClaims, bot_id: str) -> str | None:
    """Who holds reserve bot `bot_id`'s claim: a session's id, a retirement's, or None (never claimed);
    raises when the store does not answer."""
    return await holders.held(CLAIM + bot_id)


def claim_records(coordination: Coordination, channel_secret: str) -> SessionValues:
    """The claims' records in the store, sealed with a key of the deployment's channel secret."""
    key = hmac.new(channel_secret.encode(), b"voicefleet cloudrun claims v1", hashlib.sha256).digest()
    return coordination.session_values(key)


class CloudRunWarmMachines(CloudRunMachines):
    def __init__(self, settings: CloudRunSettings, *, coordination: Coordination, channel_secret: str,
                 max_idle_seconds: float, max_session_seconds: int, auth: GceAuth | None = None,
                 cell: str | None = None, reports: str | None = None, records: SessionValues | None = None) -> None:
        """`cell`: the cell this project is of CLOUDRUN_CELLS (None: the one project); `reports`: the image
        its idle bots report there (the deployment's job, the same in every cell); `records`: the claims'
        records every cell shares (one store, even in one process), else this one's own."""
        super().__init__(settings, coordination=coordination, auth=auth)
        self.cell = cell
        self.bot_image = reports or settings.job_path  # a new image is a new job revision; its idle runs are the job's
        self.idle_seconds = min(int(max_idle_seconds) + max_session_seconds + settings.grace_seconds,
                                MAX_TIMEOUT_SECONDS)
        self._records = records if records is not None else claim_records(coordination, channel_secret)
        self._first = coordination.key_holders
        self._idle: Recent[str, str] = Recent()  # bot id -> its execution's resource name, as this replica ran it

    @property
    def create_rate(self) -> Rate:
        return self.settings.run_rate

    # --- the reserve ---
    def reported_image(self, image: str | None) -> str:
        """What an idle bot run from `image` (a release's job) says in its hello."""
        return image or self.bot_image

    async def launch_idle(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                          release: str = DEFAULT_RELEASE) -> None:
        await self.creates.idle_turn()  # the token the reserve's refill took (dispatcher/machines/creates.py)
        await self.run_idle(bot_id, channel_token, image=image, release=release)

    async def run_idle(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                       release: str = DEFAULT_RELEASE) -> None:
        """The reserve execution's run, its token already taken (in a cell: from the cells' buckets). In a
        cell a 429 made nothing and is not retried there: `CellTurnedAway`, and the cell is drained."""
        # The release rides the env, which a claim cannot change: the session it serves is of it.
        env = {IDLE_BOT: bot_id, MACHINE_ID_VARIABLE: bot_id, IMAGE_VARIABLE: self.reported_image(image),
               RELEASE: release}
        if channel_token is not None:  # this bot's own credential (the deployment secret stays here)
            env |= {CHANNEL_TOKEN_VARIABLE: channel_token, IDENTITY_VARIABLE: "cloudrun",
                    EXECUTION_NONCE: self.nonce()}
        execution = await self.run(env, self.idle_seconds, image=image, release=release,
                                   turn_away=self.cell is not None)
        self._idle[bot_id] = _name(execution)

    async def holds_idle(self, bot_id: str) -> bool:
        """Whether this project runs `bot_id`'s reserve execution, unclaimed (a cell of several:
        cloudrun/cell_reserve.py); raises when the project's executions cannot be read."""
        raw = await self.idle_execution(bot_id)
        return raw is not None and to_machine(raw).state.is_active and await self._claim_of(bot_id) is None

    async def idle_execution(self, bot_id: str) -> dict[str, Any] | None:
        """The execution run for reserve bot `bot_id`, claimed or not."""
        if (name := self._idle.get(bot_id)) is not None and (raw := await self._get(name)) is not None:
            return raw
        mine = [raw for raw in await self.executions() if execution_env(raw).get(IDLE_BOT) == bot_id]
        if not mine:
            return None
        self._idle[bot_id] = _name(mine[0])
        return mine[0]

    async def adopt(self, bot_id: str, spec: LaunchSpec) -> LaunchResult:
        raw = await self.idle_execution(bot_id)
        if raw is None or not to_machine(raw).state.is_active:
            raise MachinesError("reserve_bot_gone", f"reserve execution of bot {bot_id} is gone")
        keep = float(self.idle_seconds)
        if await self._first.first(CLAIM + bot_id, spec.session_id, keep) != spec.session_id:
            raise MachinesError("reserve_bot_taken", f"reserve bot {bot_id} already serves a session")
        now = time.time()
        record = {"execution": _name(raw), "bot": bot_id, "claimed_at": now, "body_digest": spec.body_digest,
                  "transport": spec.transport, "cell": self.cell}
        try:
            await self._records.put(SESSION + spec.session_id, record, keep)
            await self._records.put(BOT + bot_id, {"session": spec.session_id, **record}, keep)
        except BaseException:  # the claim is this session's, so retire() will not cancel it: here
            with contextlib.suppress(Exception):
                await self.cancel(_name(raw))
            # A session record left behind would hand the cancelled execution to the session's cold
            # start as "existing"; one the store will not delete now, `_find` leaves (no bot record).
            with contextlib.suppress(Exception):
                await self._records.delete(SESSION + spec.session_id)
            raise
        self._executions[spec.session_id] = _name(raw)
        # From the record just written, not read back: the claim stands now, and a store read that
        # failed here would leave it running as the session's while the caller thought it failed.
        return LaunchResult(_as_claimed(to_machine(raw), record, spec.session_id), created=True, claimed=True)

    async def claim_holder(self, bot_id: str) -> str | None:
        return await bot_claim(self._first, bot_id)

    async def retire(self, bot_id: str) -> None:
        """Cancels the idle execution unless a session has claimed its bot: the claim is taken
        first, first wins, so a sweep that listed it idle never cancels a claim made since."""
        retired = RETIRED + bot_id
        if await self._first.first(CLAIM + bot_id, retired, float(self.idle_seconds)) != retired:
            return  # a session's (its stop cancels the execution)
        raw = await self.idle_execution(bot_id)
        if raw is not None and not raw.get("completionTime"):
            await self.cancel(_name(raw))

    async def idle_machines(self) -> list[IdleMachine]:
        idle = [raw for raw in await self.executions()
                if execution_env(raw).get(IDLE_BOT) and to_machine(raw).state.is_active]
        claimed = await asyncio.gather(*(self._claim_of(execution_env(raw)[IDLE_BOT]) for raw in idle))
        return [IdleMachine(execution_env(raw)[IDLE_BOT], to_machine(raw).created_at)
                for raw, claim in zip(idle, claimed, strict=True) if claim is None]

    def exit_detail(self, bot_id: str) -> str | None:
        """An execution's exit is not seen here: a bot that never dialled in is only missing."""
        return None

    # --- a claimed execution's session, from the store ---
    async def _claim_of(self, bot_id: str) -> dict[str, Any] | None:
        return await self._records.get(BOT + bot_id)

    def _own(self, claim: dict[str, Any] | None) -> dict[str, Any] | None:
        """A claim made in this project (its cell), else None: an execution's name is a path any project
        can `_get`, and a look-alike elsewhere can carry a claimed bot's id."""
        return claim if claim is not None and claim.get("cell") == self.cell else None

    async def _find(self, session_id: str) -> dict[str, Any] | None:
        if self._executions.get(session_id) is None and (claim := await self._whole_claim(session_id)):
            self._executions[session_id] = str(claim["execution"])
        return await super()._find(session_id)

    async def _whole_claim(self, session_id: str) -> dict[str, Any] | None:
        """The session's claim in this project, if both its records stand. A session record whose bot
        record is missing (or names another session) is a claim that failed half-written, its execution
        cancelled: the session's cold start must run its own, not get that one back as "existing"."""
        if (claim := self._own(await self._records.get(SESSION + session_id))) is None:
            return None
        bot = await self._claim_of(str(claim.get("bot", "")))
        whole = bot is not None and bot.get("session") == session_id and bot.get("execution") == claim["execution"]
        return claim if whole else None

    async def _machine(self, raw: Mapping[str, Any]) -> Machine:
        machine = await super()._machine(raw)
        bot_id = execution_env(raw).get(IDLE_BOT)
        if not bot_id or (claim := self._own(await self._claim_of(bot_id))) is None:
            return machine
        return _as_claimed(machine, claim, str(claim["session"]))

    async def list(self) -> list[Machine]:
        running = [raw for raw in await self.executions() if not raw.get("completionTime")]
        machines = await asyncio.gather(*(self._machine(raw) for raw in running
                                          if execution_env(raw).get(SESSION_ID) or execution_env(raw).get(IDLE_BOT)))
        return [m for m in machines if m.session_id]

    async def _serves(self, kind: str, subject: str, session_id: str | None = None) -> RunningExecution | None:
        if kind != "idle":
            return await super()._serves(kind, subject, session_id)
        if session_id is None and await self.claim_holder(subject) is not None:
            return None  # a claimed (or retired) bot's hello names its session: an idle one is not its own
        raw = await self.idle_execution(subject)
        return self.read_here(raw if raw is not None and to_machine(raw).state.is_active else None)
