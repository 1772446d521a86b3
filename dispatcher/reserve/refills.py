"""The planner's launches within one tick, carried out concurrently within the create limit.

Each reserve bot is launched on a create token taken just before it (`FleetPlanning.refill_token`:
only while one remains for a cold start), up to CONCURRENT_LAUNCHES of them in flight at once. One
after another, a burst that needs tens of launches was bounded by the provider's answer time (a
RunTask or an insert answers in a second or more), not by the create limit: twenty launches at
1 s each took twenty seconds where ECS allows twenty RunTask calls a second. The first failure
stops the launches not yet begun; the next tick tries again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable

from dispatcher.machines.base import WarmMachines
from dispatcher.outbound.provider_errors import ProviderError
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.reserve.releases import DEFAULT_ONLY, WarmRelease
from dispatcher.reserve.warming import Warming

log = logging.getLogger("dispatcher.reserve.reserve")

# In flight at once: ten 1-2 s provider calls at a time reach ECS's 20 RunTask calls/s, and each
# already holds its token, so the provider's own limit is never what bounds them.
CONCURRENT_LAUNCHES = 10


class Refills:
    def __init__(self, machines: WarmMachines, warming: Warming, token: Callable[[str | None], Awaitable[bool]],
                 credential: Callable[[str], str | None], clock: Callable[[], float]) -> None:
        self._machines = machines
        self._warming = warming
        self._token = token
        self._credential = credential
        self._clock = clock

    async def launch(self, launches: int, release: WarmRelease = DEFAULT_ONLY[0], image: str = "") -> None:
        """Up to `launches` reserve bots of `release` (whose bots report `image`), as many as the
        create limit's spare tokens allow."""
        gate = asyncio.Semaphore(CONCURRENT_LAUNCHES)
        failed = asyncio.Event()
        under_way: list[asyncio.Task[None]] = []
        try:
            for _ in range(launches):
                await gate.acquire()
                # (cold launches took the spare creates first; over cells, a token where the release runs)
                if failed.is_set() or not await self._token(release.image):
                    gate.release()
                    break
                bot_id = f"rsv-{secrets.token_hex(6)}"
                self._warming.launched(bot_id, self._clock(), image)
                under_way.append(asyncio.create_task(self._one(bot_id, release, gate, failed),
                                                     name=f"reserve-launch-{bot_id}"))
        finally:
            await asyncio.gather(*under_way)  # each handles its own failure

    async def _one(self, bot_id: str, release: WarmRelease, gate: asyncio.Semaphore, failed: asyncio.Event) -> None:
        try:
            if release.name == DEFAULT_RELEASE and release.image is None:
                # The provider's own bot, called as before releases (a provider not yet taking the
                # release keywords still serves the one release a deployment without releases has).
                await self._machines.launch_idle(bot_id, self._credential(bot_id))
            else:
                await self._machines.launch_idle(bot_id, self._credential(bot_id), image=release.image,
                                                 release=release.name)
        except ProviderError as exc:
            self._warming.forget(bot_id)
            if not failed.is_set():
                log.warning("reserve launch failed (%s); retrying at the next tick", exc)
            failed.set()
        finally:
            gate.release()
