"""Claiming an idle bot held at another replica, and answering such claims here.

A bot's channel ends at one replica, and only that replica can assign it a session (the channel
is a socket there) and, for local bots, re-file its process. So a start at replica A with no
idle bot on A's own channel reads the deployment's pool (dispatcher/store/pool.py), picks the
replica holding the most idle bots that fit, and relays `reserve.claim` with the session's launch
values to it (dispatcher/store/relay.py). That replica runs its ordinary warm claim
(dispatcher/reserve/claim.py: taken off its pool synchronously, claimed atomically in the store,
assigned, re-tagged) and answers with the machine; it is the session's owner from then on, as for
any bot whose channel is there. A replica with none left answers "none" and the next is tried.

The planner retires and freezes bots anywhere the same way (`reserve.retire`, `reserve.freeze`):
the holding replica takes the bot off its pool first, so a bot about to be retired or frozen is
never claimed, and vice versa.

Every failure on the way (the store, a silent replica, a refusal) makes the start cold: the
reserve is never a new way to fail. A relay that times out stops the search rather than trying
another replica: the silent one may still assign its bot, and one session gets one warm bot at
most (its claim record names it). The session's values cross the store's pub/sub here as an
offer's SDP does (docs/replicas.md).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.log_text import shown
from dispatcher.machines.base import LaunchResult, LaunchSpec, machine_as_json, machine_from_json
from dispatcher.machines.bot_environment import session_transport
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import Coordination, PoolBot, ReplicaPool
from dispatcher.store.relay import NotHere

log = logging.getLogger("dispatcher.reserve.reserve")

CLAIM, RETIRE, FREEZE = "reserve.claim", "reserve.retire", "reserve.freeze"
METHODS = frozenset({CLAIM, RETIRE, FREEZE})
CLAIM_TIMEOUT_SECONDS = 10.0  # the holder's claim: a 2 s assign at most, then the provider's re-tag
MAX_REPLICAS_TRIED = 3


def spec_params(spec: LaunchSpec) -> dict[str, Any]:
    """The session's launch values for the holding replica's `assign` (no channel credential: a
    claimed bot has its own)."""
    return {"session_id": spec.session_id, "body_digest": spec.body_digest,
            "max_session_seconds": spec.max_session_seconds, "body": dict(spec.body),
            "room_url": spec.room_url, "bot_token": spec.bot_token,
            "ice_config": dict(spec.ice_config) if spec.ice_config else None, "transport": spec.transport}


def spec_from(session_id: str, params: Mapping[str, Any]) -> LaunchSpec:
    try:
        spec = LaunchSpec(
            session_id=session_id, body_digest=str(params["body_digest"]),
            max_session_seconds=int(params["max_session_seconds"]), body=dict(params.get("body") or {}),
            room_url=_text(params.get("room_url")), bot_token=_text(params.get("bot_token")),
            ice_config=dict(params["ice_config"]) if params.get("ice_config") else None,
            transport=_text(params.get("transport")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiError(400, "invalid_request", "a relayed claim without a session's launch values") from exc
    if params.get("session_id") != session_id:
        raise ApiError(400, "invalid_request", "a relayed claim for another session")
    return spec


def holders(views: list[ReplicaPool], me: str, image: str, transport: str) -> list[str]:
    """Other replicas holding an idle bot that can serve `transport`, the most such bots first."""
    def fits(bot: PoolBot) -> bool:
        return bot.state == "idle" and bot.image == image and transport in bot.transports

    counts = {view.replica_id: sum(1 for b in view.bots if fits(b)) for view in views if view.replica_id != me}
    return sorted((r for r, n in counts.items() if n), key=lambda r: -counts[r])


class ClaimsElsewhere:
    """A's side: a warm bot from another replica's channel, or None (launch cold)."""

    def __init__(self, coordination: Coordination, image: Callable[[], str]) -> None:
        self._coordination = coordination
        self._image = image

    async def claim(self, spec: LaunchSpec) -> LaunchResult | None:
        transport = session_transport(spec)
        try:
            views = await self._coordination.pool.views()
        except StoreUnavailable:
            return None
        me = self._coordination.replica_id
        for replica in holders(views, me, self._image(), transport)[:MAX_REPLICAS_TRIED]:
            try:
                answer = await self._coordination.ask_replica(replica, spec.session_id, CLAIM, spec_params(spec),
                                                              CLAIM_TIMEOUT_SECONDS)
            except TimeoutError:
                log.warning("session %s: replica %s did not answer its claim; launching cold", spec.session_id,
                            shown(replica))
                return None
            except (StoreUnavailable, ApiError, NotHere) as exc:
                log.warning("session %s: claim at replica %s failed (%s); trying the next", spec.session_id,
                            shown(replica), type(exc).__name__)
                continue
            machine = machine_from_json(answer.get("machine")) if answer is not None else None
            if machine is not None:
                return LaunchResult(machine, created=bool(answer and answer.get("created", True)), claimed=True)
        return None

    async def retire(self, replica: str, bot_id: str) -> None:
        """The planner's retirement of a bot another replica holds (that replica stops it)."""
        await self._order(replica, bot_id, RETIRE)

    async def freeze(self, replica: str, bot_id: str) -> None:
        """The planner's freeze of a hot bot another replica holds (that replica freezes it)."""
        await self._order(replica, bot_id, FREEZE)

    async def _order(self, replica: str, bot_id: str, method: str) -> None:
        try:
            await self._coordination.ask_replica(replica, bot_id, method, {"bot_id": bot_id}, CLAIM_TIMEOUT_SECONDS)
        except (TimeoutError, StoreUnavailable, ApiError, NotHere) as exc:
            log.info("%s of reserve bot %s at replica %s failed (%s); the next plan sees it again",
                     method, shown(bot_id), shown(replica), type(exc).__name__)


ClaimHere = Callable[[LaunchSpec], Awaitable[LaunchResult | None]]
RetireHere = Callable[[str], Awaitable[bool]]
FreezeHere = Callable[[str], bool]


async def answer(claim: ClaimHere, retire: RetireHere, freeze: FreezeHere, session_id: str, method: str,
                 params: Mapping[str, Any]) -> Mapping[str, Any]:
    """B's side: another replica's claim of (or the planner's retirement or freeze of) a bot here."""
    if method == CLAIM:
        result = await claim(spec_from(session_id, params))
        if result is None:
            return {"machine": None}
        return {"machine": machine_as_json(result.machine), "created": result.created}
    if method in (RETIRE, FREEZE):
        bot_id = params.get("bot_id")
        if not isinstance(bot_id, str):
            raise ApiError(400, "invalid_request", f"{method} names its bot")
        if method == FREEZE:
            return {"frozen": freeze(bot_id)}
        return {"retired": await retire(bot_id)}
    raise ApiError(400, "invalid_request", f"unknown reserve request {method!r}")


def _text(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value
