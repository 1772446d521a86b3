"""Each caller's share of the deployment: of its sessions (`KEY_SESSION_SHARE` of
MAX_CONCURRENT_SESSIONS) and of its warm reserve (`KEY_WARM_SHARE` of RESERVE_MAX_IDLE claims a
minute), so one key cannot hold every slot and drain every idle bot while others are refused.

The shares apply to every caller with two or more API keys (the phone path's own calls, those
carriers open, count as one caller of their own). With one key only those carrier calls are held
to theirs: a carrier credential is standing (whoever saw it can open calls), while the one key is
the deployment's own client and may use everything. A keyless local deployment is held to nothing.

A key's sessions are counted for the whole deployment (`KeySessions`, dispatcher/store/), taken
as a start is admitted and given back when it fails or the key stops the session. Sessions that
end on their own are noticed when the key reaches its share: its recorded sessions are looked up
at the provider (at most once per `RECHECK_SECONDS` per key and replica, so refusals cost the
provider nothing more), and those that ended no longer count. Past its warm share a key's starts
launch cold: they are served, later, and the reserve is left for other keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from dispatcher.errors import ApiError
from dispatcher.machines.base import Machine
from dispatcher.models.admission import StreamShare
from dispatcher.sessions.admission import CAPACITY_RETRY_AFTER_SECONDS
from dispatcher.settings import Settings
from dispatcher.store.coordination import KeySessions, Rate
from dispatcher.store.share_ask import ShareAsk, ShareHeld

RECHECK_SECONDS = 5.0  # a key at its share looks its sessions up at most this often (per replica)
# A session recorded this recently may still be launching (not yet listed by its provider): it counts.
LAUNCHING_SECONDS = 60.0
WARM_WINDOW_SECONDS = 60.0  # a key's warm share is refilled over a minute


class KeyShare:
    def __init__(
        self,
        settings: Settings,
        sessions: KeySessions,
        status: Callable[[str], Awaitable[Machine | None]],
        *,
        api_keys: int,
        warm_rate: Callable[[float, int], Rate] | None = None,  # the coordination's per-key bucket
        reserve_max_idle: int = 0,
    ) -> None:
        self._sessions = sessions
        self._status = status
        self._api_keys = api_keys
        self._cap = settings.max_concurrent_sessions
        self._fraction = settings.key_session_share
        self._fractions: dict[str, float] = {}  # caller id → its own share, set at runtime
        # A record outlives no session: the reaper stops every bot by MAX_SESSION_SECONDS.
        self._record_seconds = settings.max_session_seconds + LAUNCHING_SECONDS
        self._checked: dict[str, float] = {}  # caller → when its sessions were last looked up here
        self._warm_fraction, self._warm_rate = settings.key_warm_share, warm_rate
        self.warm_share = 0
        self._warm: Rate | None = None
        self.resize_warm(reserve_max_idle)

    def resize_warm(self, reserve_max_idle: int) -> None:
        """The reserve's ceiling as it applies now (RESERVE_MAX_IDLE, or its runtime value): each key's
        warm share is KEY_WARM_SHARE of it, from the next start on."""
        share = max(1, math.floor(self._warm_fraction * reserve_max_idle)) if reserve_max_idle else 0
        if share == self.warm_share and (self._warm is not None or not share):
            return
        self.warm_share = share
        self._warm = (self._warm_rate(share / WARM_WINDOW_SECONDS, share)
                      if self._warm_rate is not None and share else None)

    @property
    def session_share(self) -> int:
        """The sessions a caller without a share of its own may hold."""
        return max(1, math.floor(self._fraction * self._cap))

    def share_of(self, caller: str) -> tuple[float, int]:
        """`caller`'s fraction of the cap and the sessions it may hold."""
        fraction = self._fractions.get(caller, self._fraction)
        return fraction, max(1, math.floor(fraction * self._cap))

    def resize(self, cap: int, fractions: dict[str, float], callers: int) -> None:
        """A runtime change (dispatcher/api/runtime_capacity.py): the session cap, each caller's own
        fraction of it (others keep KEY_SESSION_SHARE), and how many callers the keys are now.
        Applies to the next start; sessions a key already holds above its new share go on."""
        self._cap, self._fractions, self._api_keys = cap, dict(fractions), callers

    def applies(self, caller: str, *, internal: bool) -> bool:
        """Whether `caller` is held to its share: another caller could need the room it would take."""
        return self._api_keys >= 2 or (internal and self._api_keys >= 1)

    @contextlib.asynccontextmanager
    async def slot(self, caller: str, session_id: str, *, internal: bool) -> AsyncIterator[None]:
        """Counts `session_id` as `caller`'s for the block, and after it unless the block fails;
        raises 429 `key_at_capacity` when the key already holds its share."""
        if not self.applies(caller, internal=internal):
            yield
            return
        await self._take(caller, session_id, internal=internal)
        try:
            yield
        except BaseException:
            await self._sessions.release(caller, [session_id])
            raise

    def stream_share(self, caller: str, *, internal: bool) -> StreamShare | None:
        """`caller`'s share of the model service's streams, where its share of sessions applies:
        its fraction of them (as of the cap), each of its sessions holding one."""
        if not self.applies(caller, internal=internal):
            return None
        return StreamShare(caller, self.share_of(caller)[0], self._record_seconds,
                           functools.partial(self._released_ended, caller))

    async def hold_place(self, caller: str, session_id: str, seconds: float) -> None:
        """Counts the session a call token will start as `caller`'s for `seconds` (until its client
        connects, when `forget` hands the place to the session itself); 429 `key_at_capacity` at
        its share. A token holds a place in another region for a key: within the key's share."""
        if self.applies(caller, internal=False):
            await self._take(caller, session_id, internal=False, seconds=seconds)

    @contextlib.asynccontextmanager
    async def slot_with_cap(self, caller: str, session_id: str, *, internal: bool,
                            cap: Callable[[ShareAsk | None], AbstractAsyncContextManager[None]]) -> AsyncIterator[None]:
        """`slot`, then `cap` (the session cap's, `Admission.slot`) for the block, both decided in one
        step where the store allows (dispatcher/store/share_ask.py): the same refusals, in the same
        order, as `slot` around `cap`, and a cap that refuses leaves the key's place untaken."""
        if not self.applies(caller, internal=internal):
            async with cap(None):
                yield
            return
        fraction, share = self.share_of(caller)
        ask = ShareAsk(self._sessions, caller, session_id, share, self._record_seconds)
        taken = False
        try:
            async with contextlib.AsyncExitStack() as admitted:
                try:
                    await admitted.enter_async_context(cap(ask))
                except ShareHeld as refused:
                    if not await self._released_ended(caller, refused.held):
                        raise self._refused(refused.held, fraction, internal=internal) from None
                    try:
                        await admitted.enter_async_context(cap(ask))
                    except ShareHeld as again:
                        raise self._refused(again.held, fraction, internal=internal) from None
                taken = True
                yield
        except BaseException:
            if taken:  # as `slot`: after the cap's launch is given back
                await self._sessions.release(caller, [session_id])
            raise

    async def _take(self, caller: str, session_id: str, *, internal: bool, seconds: float | None = None) -> None:
        lasts = self._record_seconds if seconds is None else seconds
        fraction, share = self.share_of(caller)
        held = await self._sessions.hold(caller, session_id, share, lasts)
        if held is None:
            return
        if await self._released_ended(caller, held):
            held = await self._sessions.hold(caller, session_id, share, lasts)
            if held is None:
                return
        raise self._refused(held, fraction, internal=internal)

    async def _released_ended(self, caller: str, held: dict[str, float]) -> bool:
        """Whether some of the key's held sessions had ended and no longer count (looked up at most
        once per RECHECK_SECONDS per key here)."""
        now = time.monotonic()
        if now - self._checked.get(caller, -math.inf) < RECHECK_SECONDS:
            return False
        self._checked[caller] = now
        ended = await self._ended(held)
        if ended:
            await self._sessions.release(caller, ended)
        return bool(ended)

    def _refused(self, held: dict[str, float], fraction: float, *, internal: bool) -> ApiError:
        return ApiError(
            429,
            "key_at_capacity",
            f"{'the calls carriers open' if internal else 'this API key'} already run{'' if internal else 's'} "
            f"{len(held)} sessions, {'their' if internal else 'its'} share ({fraction:g} of "
            f"MAX_CONCURRENT_SESSIONS {self._cap}) while other keys use this deployment: stop one of them "
            "or try again later",
            retry_after=CAPACITY_RETRY_AFTER_SECONDS,
        )

    async def _ended(self, held: dict[str, float]) -> list[str]:
        """Those of the key's recorded sessions that no longer run (those just recorded may be launching)."""
        older = [s for s, ago in held.items() if ago >= LAUNCHING_SECONDS]
        machines = await asyncio.gather(*(self._status(s) for s in held), return_exceptions=True)
        ended = []
        for session_id, machine in zip(held, machines, strict=True):
            if isinstance(machine, BaseException):
                continue  # not known to have ended: it keeps counting
            if machine is not None and not machine.state.is_active:
                ended.append(session_id)
            elif machine is None and session_id in older:
                ended.append(session_id)
        return ended

    async def forget(self, caller: str, session_id: str) -> None:
        """The key stopped this session: it no longer counts."""
        await self._sessions.release(caller, [session_id])

    def warm_spent(self) -> ApiError:
        """A start that only a warm bot could serve in time, from a key past its warm share."""
        return ApiError(
            429,
            "key_warm_share_spent",
            f"this API key has claimed its share of warm bots ({self.warm_share} a minute, KEY_WARM_SHARE of "
            "RESERVE_MAX_IDLE) while other keys use this deployment: start without maxWaitSeconds (a cold "
            "start) or try again later",
            retry_after=WARM_WINDOW_SECONDS / self.warm_share,
        )

    def bounds_warm(self, caller: str, *, internal: bool) -> bool:
        """Whether `caller`'s warm claims are counted (a reserve, and others to leave it to)."""
        return self._warm is not None and self.applies(caller, internal=internal)

    async def may_claim_warm(self, caller: str, *, internal: bool) -> bool:
        """False when the key has claimed its warm share this minute (its start launches cold)."""
        if self._warm is None or not self.applies(caller, internal=internal):
            return True
        return await self._warm.take(f"warm:{caller}") == 0
