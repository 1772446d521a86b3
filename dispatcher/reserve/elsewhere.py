"""Claiming an idle bot held at another replica, and answering such claims here.

Only the replica where a bot's channel ends can assign it, so a start with no idle bot on this
replica's channels reads the deployment's pool and relays `reserve.claim` to the replica holding
the most fitting idle bots, which runs its ordinary warm claim and owns the session from then on.
The planner's `reserve.retire`, `reserve.freeze` and `reserve.resume` and a frozen bot's
`reserve.take_frozen` and `reserve.back` travel the same way; the holding replica takes the bot
off its pool first, so it is never both claimed and retired. Every failure on the way makes the
start cold; a relay that times out ends the search, so one session gets one warm bot at most. The
whole exchange: docs/replicas.md.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from botchannel.recording import RecordingPlan
from dispatcher.errors import ApiError
from dispatcher.machines.base import LaunchResult, LaunchSpec, machine_as_json, machine_from_json
from dispatcher.machines.bot_environment import session_transport
from dispatcher.observability.log_text import shown
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import Coordination, PoolBot, ReplicaPool
from dispatcher.store.relay import NotHere

log = logging.getLogger("dispatcher.reserve.reserve")

CLAIM, RETIRE, FREEZE, RESUME = "reserve.claim", "reserve.retire", "reserve.freeze", "reserve.resume"
TAKE_FROZEN, BACK = "reserve.take_frozen", "reserve.back"
METHODS = frozenset({CLAIM, RETIRE, FREEZE, RESUME, TAKE_FROZEN, BACK})
CLAIM_TIMEOUT_SECONDS = 10.0  # the holder's claim: a 2 s assign at most, then the provider's re-tag
MAX_REPLICAS_TRIED = 3


def spec_params(spec: LaunchSpec) -> dict[str, Any]:
    """The session's launch values for the holding replica's `assign` (no channel credential: a
    claimed bot has its own), with the release the start chose: the holder claims a bot of that
    release's image and records the session as that release's."""
    return {"session_id": spec.session_id, "body_digest": spec.body_digest,
            "max_session_seconds": spec.max_session_seconds, "body": dict(spec.body),
            "room_url": spec.room_url, "bot_token": spec.bot_token,
            "ice_config": dict(spec.ice_config) if spec.ice_config else None, "transport": spec.transport,
            "release": spec.release, "image": spec.image, "release_env": dict(spec.release_env),
            "traceparent": spec.traceparent, "recording": spec.recording.params() if spec.recording else None}


def spec_from(session_id: str, params: Mapping[str, Any]) -> LaunchSpec:
    try:
        recording = params.get("recording")
        spec = LaunchSpec(
            session_id=session_id, body_digest=str(params["body_digest"]),
            max_session_seconds=int(params["max_session_seconds"]), body=dict(params.get("body") or {}),
            room_url=_text(params.get("room_url")), bot_token=_text(params.get("bot_token")),
            ice_config=dict(params["ice_config"]) if params.get("ice_config") else None,
            # A replica of an older version sends no release: its sessions were the default release's.
            transport=_text(params.get("transport")), release=_name(params.get("release", DEFAULT_RELEASE)),
            image=_text(params.get("image")), release_env=_texts(params.get("release_env") or {}),
            traceparent=_text(params.get("traceparent")),
            recording=RecordingPlan.from_params(_mapping(recording)) if recording is not None else None,
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # OverflowError: int(inf)
        raise ApiError(400, "invalid_request", "a relayed claim without a session's launch values") from exc
    if params.get("session_id") != session_id:
        raise ApiError(400, "invalid_request", "a relayed claim for another session")
    return spec


def holders(views: list[ReplicaPool], me: str, image: str, transport: str, state: str = "idle") -> list[str]:
    """Other replicas holding a bot in `state` (idle, or frozen) that can serve `transport`, the
    most such bots first."""
    def fits(bot: PoolBot) -> bool:
        return bot.state == state and bot.image == image and transport in bot.transports

    counts = {view.replica_id: sum(1 for b in view.bots if fits(b)) for view in views if view.replica_id != me}
    return sorted((r for r, n in counts.items() if n), key=lambda r: -counts[r])


@dataclass(frozen=True)
class TakenFrozen:
    """A frozen bot's record, taken off the replica that held it: the taker thaws it."""

    bot_id: str
    expires: int | None  # its credential's expiry: the claim record lasts as long


class ClaimsElsewhere:
    """A's side: a warm bot from another replica's channel, or None (launch cold)."""

    def __init__(self, coordination: Coordination, image: Callable[[LaunchSpec], str]) -> None:
        self._coordination = coordination
        self._image = image

    async def claim(self, spec: LaunchSpec) -> LaunchResult | None:
        transport = session_transport(spec)
        views = await self._views()
        me = self._coordination.replica_id
        for replica in holders(views, me, self._image(spec), transport)[:MAX_REPLICAS_TRIED]:
            try:
                answer = await self._ask(replica, spec.session_id, CLAIM, spec_params(spec))
            except TimeoutError:
                return None
            if answer is not None:
                return answer
        return None

    async def claim_returned(self, replica: str, bot_id: str, spec: LaunchSpec) -> LaunchResult | None:
        """The session for the thawed bot `bot_id`, which dialled `replica`: that replica assigns it."""
        try:
            return await self._ask(replica, spec.session_id, CLAIM, {**spec_params(spec), "bot_id": bot_id})
        except TimeoutError:
            return None

    async def take_frozen(self, spec: LaunchSpec) -> TakenFrozen | None:
        """A frozen bot that can serve the session, taken off another replica's records (to thaw here)."""
        transport = session_transport(spec)
        image = self._image(spec)
        me = self._coordination.replica_id
        for replica in holders(await self._views(), me, image, transport, "frozen")[:MAX_REPLICAS_TRIED]:
            try:
                answer = await self._coordination.ask_replica(replica, spec.session_id, TAKE_FROZEN,
                                                              {"image": image, "transport": transport},
                                                              CLAIM_TIMEOUT_SECONDS)
            except TimeoutError:
                # It may have taken one for us: left to its provider's sweep, never thawed twice.
                log.warning("session %s: replica %s did not hand over a frozen bot", spec.session_id, shown(replica))
                return None
            except (StoreUnavailable, ApiError, NotHere) as exc:
                log.warning("session %s: taking a frozen bot at replica %s failed (%s); trying the next",
                            spec.session_id, shown(replica), type(exc).__name__)
                continue
            taken = taken_from(answer)
            if taken is not None:
                return taken
        return None

    async def back(self, waiter: str, bot_id: str) -> bool:
        """Tells `waiter` that the bot it thawed dialled this replica: True if it still wants it."""
        try:
            answer = await self._coordination.ask_replica(
                waiter, bot_id, BACK, {"bot_id": bot_id, "replica": self._coordination.replica_id},
                CLAIM_TIMEOUT_SECONDS)
        except (TimeoutError, StoreUnavailable, ApiError, NotHere) as exc:
            log.info("reserve bot %s is back, but replica %s did not hear it (%s)", shown(bot_id), shown(waiter),
                     type(exc).__name__)
            return False
        return bool(answer and answer.get("wanted") is True)

    async def retire(self, replica: str, bot_id: str) -> None:
        """The planner's retirement of a bot another replica holds (that replica stops it)."""
        await self._order(replica, bot_id, RETIRE)

    async def freeze(self, replica: str, bot_id: str) -> None:
        """The planner's freeze of a hot bot another replica holds (that replica freezes it)."""
        await self._order(replica, bot_id, FREEZE)

    async def resume(self, replica: str, bot_id: str) -> None:
        """The planner's resume of a frozen bot another replica holds (that replica thaws it to hot)."""
        await self._order(replica, bot_id, RESUME)

    async def _views(self) -> list[ReplicaPool]:
        try:
            return await self._coordination.pool.views()
        except StoreUnavailable:
            return []

    async def _ask(self, replica: str, session_id: str, method: str, params: Mapping[str, Any]) -> LaunchResult | None:
        """A claim at `replica`: its machine, or None (try the next). Raises `TimeoutError`: the silent
        replica may still assign its bot, so the start goes cold rather than claim a second one."""
        try:
            answer = await self._coordination.ask_replica(replica, session_id, method, params, CLAIM_TIMEOUT_SECONDS)
        except TimeoutError:
            log.warning("session %s: replica %s did not answer its claim; launching cold", session_id, shown(replica))
            raise
        except (StoreUnavailable, ApiError, NotHere) as exc:
            log.warning("session %s: claim at replica %s failed (%s); trying the next", session_id,
                        shown(replica), type(exc).__name__)
            return None
        machine = machine_from_json(answer.get("machine")) if answer is not None else None
        if machine is None:
            return None
        idle = answer.get("idle_seconds") if answer is not None else None
        return LaunchResult(machine, created=bool(answer and answer.get("created", True)), claimed=True,
                            idle_seconds=float(idle) if isinstance(idle, int | float) and math.isfinite(idle) else None)

    async def _order(self, replica: str, bot_id: str, method: str) -> None:
        try:
            await self._coordination.ask_replica(replica, bot_id, method, {"bot_id": bot_id}, CLAIM_TIMEOUT_SECONDS)
        except (TimeoutError, StoreUnavailable, ApiError, NotHere) as exc:
            log.info("%s of reserve bot %s at replica %s failed (%s); the next plan sees it again",
                     method, shown(bot_id), shown(replica), type(exc).__name__)


def taken_from(answer: Mapping[str, Any] | None) -> TakenFrozen | None:
    bot_id = answer.get("bot_id") if answer is not None else None
    expires = answer.get("expires") if answer is not None else None
    if not isinstance(bot_id, str) or not (expires is None or isinstance(expires, int)):
        return None
    return TakenFrozen(bot_id, expires)


class HeldHere(Protocol):
    """B's side: what this replica does with the bots it holds, for another replica or the planner."""

    async def claim(self, spec: LaunchSpec) -> LaunchResult | None:
        """An idle bot of this replica's channel takes the session."""
        ...

    async def claim_returned(self, bot_id: str, spec: LaunchSpec) -> LaunchResult | None:
        """The thawed bot `bot_id`, back on this replica's channel, takes the session it was thawed for."""
        ...

    async def retire(self, bot_id: str) -> bool: ...

    def freeze(self, bot_id: str) -> bool: ...

    def resume(self, bot_id: str) -> bool: ...

    def take_frozen(self, image: str, transport: str) -> TakenFrozen | None: ...

    def came_back_at(self, bot_id: str, replica: str) -> bool:
        """The bot this replica thaws dialled `replica`: True if it is still waited for."""
        ...


async def answer(here: HeldHere, session_id: str, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """B's side: another replica's claim of (or the planner's order for) a bot here."""
    if method == CLAIM:
        spec = spec_from(session_id, params)
        returned = params.get("bot_id")
        if returned is not None and not isinstance(returned, str):
            raise ApiError(400, "invalid_request", "a claim names its bot by id")
        result = await (here.claim(spec) if returned is None else here.claim_returned(returned, spec))
        if result is None:
            return {"machine": None}
        return {"machine": machine_as_json(result.machine), "created": result.created,
                "idle_seconds": result.idle_seconds}
    if method == TAKE_FROZEN:
        image, transport = params.get("image"), params.get("transport")
        if not isinstance(image, str) or not isinstance(transport, str):
            raise ApiError(400, "invalid_request", f"{method} names the image and the transport")
        taken = here.take_frozen(image, transport)
        return {"bot_id": None} if taken is None else {"bot_id": taken.bot_id, "expires": taken.expires}
    bot_id = params.get("bot_id")
    if not isinstance(bot_id, str):
        raise ApiError(400, "invalid_request", f"{method} names its bot")
    if method == FREEZE:
        return {"frozen": here.freeze(bot_id)}
    if method == RESUME:
        return {"resumed": here.resume(bot_id)}
    if method == BACK:
        replica = params.get("replica")
        if not isinstance(replica, str):
            raise ApiError(400, "invalid_request", f"{method} names the replica the bot dialled")
        return {"wanted": here.came_back_at(bot_id, replica)}
    if method == RETIRE:
        return {"retired": await here.retire(bot_id)}
    raise ApiError(400, "invalid_request", f"unknown reserve request {method!r}")


def _text(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _name(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("not a release name")
    return value


def _mapping(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError("not a mapping")
    return value


def _texts(value: object) -> dict[str, str]:
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in _mapping(value).items()):
        raise TypeError("not a mapping of strings")
    return dict(_mapping(value))
