"""The machines protocol: what the dispatcher needs from any place that runs one bot per session.

Every provider (local processes, ECS Fargate, Compute Engine, Fly Machines, Cerebrium) implements
`Machines`. The provider is the source of truth: each machine is named or tagged with its
`session_id`, so any dispatcher replica can answer for any session without a store of its own
(docs/design.md §1). Cerebrium, which has no API to read a run, is the exception: its runs are
known through their bots' channels and the coordination store (machines/cerebrium/runs.py).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from botchannel.recording import RecordingPlan
from dispatcher.channel.access import ChannelAccess
from dispatcher.channel.identity import MachineIdentity
from dispatcher.outbound.provider_errors import ProviderError
from dispatcher.outbound.ratelimit import Rate
from dispatcher.releases.names import DEFAULT_RELEASE


class MachineState(enum.StrEnum):
    """A session's lifecycle as clients see it (`GET /sessions/{id}` → `status`)."""

    STARTING = "starting"  # accepted by the provider, not running yet
    STARTED = "started"  # the machine (or process) runs; the bot may not be in the room yet
    JOINED = "joined"  # the bot is in the room / a peer is connected
    ENDED = "ended"  # the bot exited cleanly or was stopped
    FAILED = "failed"  # it never started, or exited with an error

    @property
    def is_active(self) -> bool:
        return self in (MachineState.STARTING, MachineState.STARTED, MachineState.JOINED)


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a provider needs to start the bot for one session.

    `bot_token`, `ice_config` and `body` reach a bot with a `channel_token` over its channel
    (dispatcher/machines/bot_environment.py), as they reach a pool's (`PooledMachines`), which holds
    none; without one, providers pass them in the machine's environment (or metadata read by the
    bot), never on a command line, never in logs.
    """

    session_id: str
    body_digest: str  # fingerprint of the client's request body, for Idempotency-Key conflicts
    max_session_seconds: int
    body: Mapping[str, Any] = field(default_factory=dict)  # the client's `body`, passed to the bot
    room_url: str | None = None  # Daily room (cloud providers)
    bot_token: str | None = field(default=None, repr=False)  # Daily meeting token for the bot
    # Cloud WebRTC: the bot's ICE servers with its own TURN credentials (a secret, like the token).
    ice_config: Mapping[str, Any] | None = field(default=None, repr=False)
    # The bot's own channel credential (dispatcher/channel/credentials.py), bound to this session:
    # a secret, in the machine's environment like the token. None: the deployment has no channel.
    channel_token: str | None = field(default=None, repr=False)
    # "daily" or "webrtc": recorded with the machine (tag/label/metadata), so any replica knows
    # whether the session has a room or takes an offer. None: the provider's default.
    transport: str | None = None
    # The W3C `traceparent` of the start (dispatcher/observability/tracing.py): the bot's spans continue its trace.
    traceparent: str | None = None
    # A start spilled over from another region: its demand was counted there, where its caller is.
    counted_elsewhere: bool = False
    # The session's release (dispatcher/releases/): recorded with the machine (tag/label/metadata),
    # and what to launch for it, resolved for the session's transport (None: the provider's own
    # setting, the `default` release's), with the settings that travel with it.
    release: str = DEFAULT_RELEASE
    image: str | None = None
    release_env: Mapping[str, str] = field(default_factory=dict)
    # Record the session (dispatcher/artifacts/): the plan its bot is assigned. None: not recorded.
    recording: RecordingPlan | None = None


@dataclass(frozen=True)
class Machine:
    """A provider's view of one session's machine."""

    session_id: str
    machine_id: str  # provider's own id: pid, task ARN, instance name, Fly machine id
    state: MachineState
    created_at: float  # epoch seconds; the reaper compares it with the max session duration
    body_digest: str | None = None  # as recorded at launch (tag/label/metadata)
    detail: str | None = None  # why it ended/failed, e.g. "exit code 3"
    transport: str | None = None  # as recorded at launch; None: not recorded (a Daily session)
    release: str | None = None  # as recorded at launch; None: not recorded (a machine older than releases)

    @property
    def is_webrtc(self) -> bool:
        return self.transport == "webrtc"

    @property
    def has_room(self) -> bool:
        """A Daily session: not SmallWebRTC, not a phone call's WebSocket (neither has a room)."""
        return self.transport not in ("webrtc", "websocket")


@dataclass(frozen=True)
class IdleMachine:
    """A reserve machine as its provider lists it: started ahead of demand, no session yet."""

    bot_id: str  # tagged at the provider (local: the process's, cloud: a tag/label/metadata)
    created_at: float  # epoch seconds
    frozen: bool = False  # suspended or stopped by the reserve's frozen tier (FrozenMachines)


@dataclass(frozen=True)
class LaunchResult:
    machine: Machine
    created: bool  # False: this session already had a machine (an idempotent replay)
    # A claimed reserve bot serves the session: its values went with the claim's `assign`, so
    # nothing waits for a cold bot's hello (dispatcher/channel/session_secrets.py).
    claimed: bool = False
    # A claimed bot's machine ran idle this long before its claim, since its idle hello: the
    # session's idle share of its cost (dispatcher/sessions/cost.py). None: not known here (a thaw).
    idle_seconds: float | None = None


def machine_as_json(machine: Machine | None) -> dict[str, Any] | None:
    """A machine as another replica is told it over the relay (`machine_from_json` reads it back)."""
    return None if machine is None else {**asdict(machine), "state": machine.state.value}


def machine_from_json(data: object) -> Machine | None:
    if not isinstance(data, dict):
        return None
    try:
        return Machine(**{**data, "state": MachineState(data["state"])})
    except (TypeError, ValueError, KeyError):
        return None


class MachinesError(ProviderError):
    """A machines provider call failed (`reason`, `retry_after`: see dispatcher/outbound/provider_errors.py)."""


class WaitTimeout(MachinesError):
    """The machine did not reach `started` before the deadline."""

    def __init__(self, session_id: str, timeout: float) -> None:
        super().__init__("wait_timeout", f"session {session_id} not started within {timeout:g}s")


@runtime_checkable
class Machines(Protocol):
    """One fresh machine per session. All methods are idempotent on `session_id`."""

    name: str
    @property
    def identity(self) -> MachineIdentity:
        """Checks that a bot's hello comes from the machine launched for its credential (the provider's
        identity token), or says why this provider's machines have none (dispatcher/channel/identity.py)."""
        ...

    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        """Start the session's machine, or return the one it already has (`created=False`)."""
        ...

    async def wait_started(self, session_id: str, timeout: float) -> Machine:
        """Block until the machine is `started` (or past it); raise `WaitTimeout` at the deadline.

        A machine that ends or fails while waited on is returned as is, not waited on further.
        """
        ...

    async def status(self, session_id: str) -> Machine | None:
        """The session's machine, or None if the provider has never heard of it."""
        ...

    async def stop(self, session_id: str) -> bool:
        """Stop the session's machine; False if there is none. Stopping an ended one is a no-op."""
        ...

    async def list(self) -> list[Machine]:
        """Every machine of this deployment the provider still holds, for counting and clean-up.

        That is the active ones plus any ended one that still exists (a stopped VM keeps its
        disk, a stopped task its record); the reaper removes those with `stop`.
        """
        ...

    async def aclose(self) -> None:
        """Release clients; for local machines, stop every bot (no orphans)."""
        ...

    def attach_channel(self, access: ChannelAccess) -> None:
        """Where this provider's bots dial the channel, and the credentials they get, known once the
        dispatcher's socket is bound. Local bots are told at launch; cloud bots read the address
        from their own configuration (`BOT_CHANNEL_URL`, the instance template), so for them it
        changes nothing."""
        ...


@runtime_checkable
class ReportsEnds(Protocol):
    """A provider that sees its session machines end as they do (local processes): each ended or
    failed session machine is handed to `end_listeners` at once. Others' ends are seen by listing."""

    end_listeners: list[Callable[[Machine], None]]


@runtime_checkable
class ChecksImages(Protocol):
    """A provider that can tell at once whether what a release launches is still there (local: its
    bot file), so a release whose file has gone is refused traffic instead of failing every session."""

    def image_missing(self, image: str | None) -> str | None:
        """Why `image` (a release's reference; None: the provider's own) cannot be launched now, or None."""
        ...


@runtime_checkable
class WarmMachines(Machines, Protocol):
    """A provider that can also hold a warm reserve (dispatcher/reserve/reserve.py, docs/reserve.md).

    A reserve machine is started with no session, tagged as idle with its `bot_id`; its bot dials
    the control channel and waits. A claim first assigns the session to the bot over the channel
    (the bot accepts exactly one, ever), then `adopt` re-tags the machine with the session id, so
    `status`/`stop`/`list` find it like any other session's machine.
    """

    bot_image: str  # what the provider launches for the `default` release (its own settings)

    async def launch_idle(self, bot_id: str, channel_token: str | None = None, *,
                          image: str | None = None, release: str = DEFAULT_RELEASE) -> None:
        """Start a reserve machine tagged idle with `bot_id` (no session values at all), its bot
        holding `channel_token`, the credential issued for `bot_id` alone. `image`: the release's
        provider reference for the reserve's transport (None: `bot_image`); the machine is tagged
        with `release` like a session's."""
        ...

    def reported_image(self, image: str | None) -> str:
        """What an idle bot launched with `image` says in its hello (`IMAGE_VARIABLE`): a claim
        takes only a bot whose hello names its session's release's image this way."""
        ...

    async def adopt(self, bot_id: str, spec: LaunchSpec) -> LaunchResult:
        """Re-tag the claimed reserve machine as `spec`'s session's (`created=False` and the
        reserve machine stopped if the session already had a machine)."""
        ...

    async def retire(self, bot_id: str) -> None:
        """Stop (destroy) an idle reserve machine; no-op if it is gone."""
        ...

    async def idle_machines(self) -> list[IdleMachine]:
        """Reserve machines the provider still runs (warming or idle), for counting and the reaper."""
        ...

    @property
    def create_rate(self) -> Rate | None:
        """The provider's own limit on creating machines, which the reserve mirrors so its refills
        never take the tokens a cold start needs; None: the reserve paces launches by itself."""
        ...

    def exit_detail(self, bot_id: str) -> str | None:
        """Why a reserve bot that never said hello exited, where the provider can tell (a local
        process's exit code and last words); None when it cannot or the bot has not exited."""
        ...


@runtime_checkable
class LosesCells(Protocol):
    """A warm provider over cells (ECS_CELLS): a reserve machine in a cell that did not answer its last
    listing is lost to the reserve, which forgets it (it is replaced in another cell) rather than count
    it a bot that failed: the cell's outage says nothing of the bot's image."""

    def in_lost_cell(self, bot_id: str) -> bool:
        """Whether `bot_id`'s machine is in a cell that did not answer its last listing."""
        ...


@dataclass(frozen=True)
class FrozenForm:
    """The frozen tier a provider offers: its name and the facts the reserve sizes and prices it by."""

    name: str  # "suspended" (the process kept in a snapshot) or "stopped" (only the disk kept)
    resume_seconds: float  # a thaw until the bot is back on its channel, until measured
    running_dollars_per_month: float  # one running idle bot, around the clock
    frozen_dollars_per_month: float  # one frozen bot: storage, not compute


@runtime_checkable
class SettlesAtStart(Protocol):
    """A provider with something to check once as the dispatcher starts (the agent-sandbox mode:
    its warm pool read and reported). Run in the background while the dispatcher serves; it logs, never raises."""

    async def settle(self) -> None:
        ...


@runtime_checkable
class PooledMachines(Machines, Protocol):
    """A provider whose warm machines the platform keeps in pools of its own, one per release
    (agent-sandbox's SandboxWarmPool): a start's machine is taken from it by the platform, which refills it, so the
    dispatcher only sizes it (dispatcher/reserve/pool_sizing.py). Every machine, warm or made cold for
    a start, is the pool's template's, so none holds a channel credential of its own: a start issues
    none (dispatcher/sessions/cold_secrets.py) and its bot dials with its machine's identity alone."""

    async def pool_size(self, release: str) -> int:
        """How many warm machines the release's pool is set to keep."""
        ...

    async def scale_pool(self, release: str, replicas: int) -> None:
        """Sets how many warm machines the release's pool keeps: one try, bounded by the provider's timeout."""
        ...

    async def retiring_releases(self) -> frozenset[str]:
        """Releases whose pool the deployment keeps only until their last sessions end: the ones this
        dispatcher does not list are emptied (a dropped release's warm machines would hold nodes and quota)."""
        ...

    async def pool_taking(self, release: str, within_seconds: float) -> int:
        """Starts of the release of the last `within_seconds` taking a machine from its pool right now, at
        any replica: a pool shrunk meanwhile may delete the very machine one is taking."""
        ...


class FreezeFailed(MachinesError):
    """A reserve machine could not be frozen or thawed; the provider has retired it already."""


@runtime_checkable
class FrozenMachines(WarmMachines, Protocol):
    """A provider that can also freeze an idle reserve machine and thaw it for a claim.

    A frozen machine keeps what its bot warmed (a suspended one: the whole process; a stopped one:
    its disk, so no create) and bills storage, not compute. Either call that fails retires the
    machine before raising `FreezeFailed`: a machine is never left running unaccounted.
    """

    frozen_form: FrozenForm

    async def freeze(self, bot_id: str) -> None:
        """Freeze the idle reserve machine `bot_id`; returns once the provider says it is frozen."""
        ...

    async def thaw(self, bot_id: str) -> None:
        """Start the frozen machine `bot_id` again; returns once the provider says it runs (its bot
        then dials its channel again, with the credential it was launched with)."""
        ...
