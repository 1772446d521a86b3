"""Local bots: each replica's bots are its own processes, and a session whose bot runs at another
replica is looked up, waited on and stopped through its owner (one process: there is none).

The replica that launches (or claims) a local bot records itself as the session's owner in the
store; `status`, `wait_started` and `stop` of a session that is not here go to that owner over the
store's relay (`machine.*` requests) and come back as the owner's own answer. `list` stays this
replica's own bots: admission's count of running sessions is the launches recorded in the store
plus each replica's own (docs/replicas.md, "Limits"). Local processes cannot be launched
idempotently across replicas, so a keyed start waits for the store rather than risk two bots.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine
from dispatcher.machines.base import machine_as_json as _as_json
from dispatcher.machines.base import machine_from_json as _machine
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.outbound.provider_errors import ProviderError
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import Coordination
from dispatcher.store.relay import NotHere

RELAY_TIMEOUT_SECONDS = 10.0
STATUS, WAIT, STOP = "machine.status", "machine.wait_started", "machine.stop"
METHODS = frozenset({STATUS, WAIT, STOP})


class SharedLocalMachines(LocalMachines):
    def __init__(self, settings: LocalSettings | None, coordination: Coordination) -> None:
        super().__init__(settings)
        self._coordination = coordination
        self._launched.launched_elsewhere_unchecked = True  # (its socket is at the replica that launched it)

    def _here(self, session_id: str) -> bool:
        return session_id in self._bots

    def sessions(self) -> list[str]:
        """The sessions whose bot process runs here and still runs."""
        return [session_id for session_id, bot in self._bots.items() if bot.state.is_active]

    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        result = await super().launch(spec)
        await self._own(spec.session_id)
        return result

    async def adopt(self, bot_id: str, spec: LaunchSpec) -> LaunchResult:
        result = await super().adopt(bot_id, spec)
        await self._own(spec.session_id)
        return result

    async def _own(self, session_id: str) -> None:
        # Unless its bot's hello got there first: the replica holding its channel is the one to
        # reach it through (locally the same one, unless the bot was pointed at another). A store
        # that does not answer leaves it to the heartbeat (dispatcher/store/forgiving.py).
        await self._coordination.owners.reclaim(session_id)

    async def status(self, session_id: str) -> Machine | None:
        if self._here(session_id):
            return await super().status(session_id)
        answer = await self._ask_owner(session_id, STATUS, {})
        return _machine(answer.get("machine")) if answer is not None else None

    async def wait_started(self, session_id: str, timeout: float) -> Machine:
        if self._here(session_id):
            return await super().wait_started(session_id, timeout)
        answer = await self._ask_owner(session_id, WAIT, {"timeout": timeout}, timeout + RELAY_TIMEOUT_SECONDS)
        machine = _machine(answer.get("machine")) if answer is not None else None
        if machine is None:
            return await super().wait_started(session_id, timeout)  # the provider's own "unknown"
        return machine

    async def stop(self, session_id: str) -> bool:
        if self._here(session_id):
            return await super().stop(session_id)
        answer = await self._ask_owner(session_id, STOP, {})
        return bool(answer and answer.get("stopped"))

    async def _ask_owner(
        self, session_id: str, method: str, params: Mapping[str, Any], timeout: float = RELAY_TIMEOUT_SECONDS
    ) -> Mapping[str, Any] | None:
        try:
            return await self._coordination.ask_owner(session_id, method, params, timeout)
        except (StoreUnavailable, TimeoutError) as exc:
            raise ProviderError("unavailable", f"the replica running session {session_id}'s bot cannot be asked "
                                f"({type(exc).__name__})", retry_after=2.0) from exc

    async def answer(self, session_id: str, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """Another replica's `machine.*` request for a bot of this replica (the relay's handler)."""
        if not self._here(session_id):
            raise NotHere(session_id)
        try:
            if method == STATUS:
                return {"machine": _as_json(await super().status(session_id))}
            if method == WAIT:
                timeout = float(params.get("timeout", 0))
                return {"machine": _as_json(await super().wait_started(session_id, min(timeout, 600.0)))}
            if method == STOP:
                return {"stopped": await super().stop(session_id)}
        except ProviderError as exc:
            raise ApiError(502 if exc.reason != "wait_timeout" else 504, exc.reason, exc.message) from exc
        raise ApiError(400, "invalid_request", f"unknown machine request {method!r}")

