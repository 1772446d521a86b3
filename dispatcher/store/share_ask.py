"""A key's share asked for together with the session cap: the two decisions of a start's
admission that come one after the other, taken in one step.

`Launches.slot(limit, share=...)` (dispatcher/store/coordination.py) takes the key's place and the
cap's launch together: with a store, one script decides both in one round trip
(dispatcher/store/launches.py), the share first, as separately; elsewhere (one process, a store
that did not decide) `share_then_cap` takes them one after the other, as before. Either way the
share refuses first (`ShareHeld`, nothing taken), and a cap that refuses leaves no place taken.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class CallerShare:
    """A caller's share of what a holder's places stand for (the model service's streams): at most
    `share` of its own sessions, recorded for `seconds` each, while the holder takes a place."""

    caller: str
    share: int
    seconds: float


@dataclass(frozen=True)
class HeldBy:
    """A `hold_within` refused: `whose` share is full ("holder" or "caller"), and what it holds
    (each session and how many seconds ago it was recorded)."""

    whose: str
    held: dict[str, float]


class KeySessions(Protocol):
    """Each API key's sessions across replicas (dispatcher/store/key_sessions.py): a key's share of
    the session cap is checked and taken in one step."""

    async def hold(self, caller: str, session_id: str, share: int, seconds: float) -> dict[str, float] | None:
        """Records `session_id` as `caller`'s for `seconds` if fewer than `share` are; else records
        nothing and returns the held sessions, each with how many seconds ago it was recorded."""
        ...

    async def hold_within(self, holder: str, session_id: str, share: int, seconds: float,
                          caller: CallerShare) -> HeldBy | None:
        """`hold` under `holder`, in the same step refused while `caller.caller` holds more than
        `caller.share` sessions (this one among them): what refused, and what it holds."""
        ...

    async def release(self, caller: str, session_ids: Iterable[str]) -> None:
        """These sessions no longer count for `caller` (ended, stopped, or never launched)."""
        ...


@dataclass(frozen=True)
class ShareAsk:
    """`caller`'s place for `session_id`, recorded for `seconds` unless it already holds `share`."""

    sessions: KeySessions  # where the places are kept when the store does not decide both at once
    caller: str
    session_id: str
    share: int
    seconds: float


class ShareHeld(Exception):
    """The key already holds its share: nothing was taken. `held`: each held session and how many
    seconds ago it was recorded."""

    def __init__(self, held: dict[str, float]) -> None:
        super().__init__(f"{len(held)} sessions held")
        self.held = held


@asynccontextmanager
async def share_then_cap(ask: ShareAsk, cap: AbstractAsyncContextManager[None]) -> AsyncIterator[None]:
    """The key's place, then `cap` (the cap's launch): a cap that refuses gives the place back."""
    held = await ask.sessions.hold(ask.caller, ask.session_id, ask.share, ask.seconds)
    if held is not None:
        raise ShareHeld(held)
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(cap)
        except BaseException:
            await ask.sessions.release(ask.caller, [ask.session_id])
            raise
        yield


async def share_first(ask: ShareAsk) -> None:
    """Raises `ShareHeld` when the key holds its share (taking nothing): for a start whose cap could
    not be decided (its count failed), whose answer is still the share's refusal where there is one."""
    held = await ask.sessions.hold(ask.caller, ask.session_id, ask.share, ask.seconds)
    if held is not None:
        raise ShareHeld(held)
    await ask.sessions.release(ask.caller, [ask.session_id])
