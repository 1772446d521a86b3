"""Fly's create limit is per app (1 create/s, burst 3): a deployment that needs more creates
spreads them over several apps (`FLY_APPS`), each app's limit counted once for the deployment
(`Coordination.create_limit`, `fly:<app>`).

- A session's cold machine goes to one app chosen by its session id (a stable hash), so a retry
  with the same key meets its machine's name again in the same app (409, then found) instead of
  creating a second machine in another app.
- A reserve machine goes to whichever app has a spare token (its name is a fresh bot id): a refill
  takes the token, and the launch that follows creates its machine in that app.
- What a cold launch would wait (for the honest quote) is the slowest app's wait, the refills'
  spare tokens are every app's.
"""

from __future__ import annotations

import zlib
from collections import deque

from dispatcher.outbound.ratelimit import Rate
from dispatcher.store.coordination import Coordination, CreateLimit, CreateTurn


class AppCreates:
    def __init__(self, apps: tuple[str, ...], coordination: Coordination, rate: Rate) -> None:
        if not apps:
            raise ValueError("creates need at least one app")
        self.apps = apps
        self._limits: dict[str, CreateLimit] = {
            app: coordination.create_limit(f"fly:{app}", rate.per_second, rate.burst) for app in apps}
        self._refilled: deque[str] = deque()  # apps whose refill token was taken, for the launches that follow

    def app_of(self, session_id: str) -> str:
        """The app a session's cold machine is created in (the same at every replica, every retry)."""
        return self.apps[zlib.crc32(session_id.encode()) % len(self.apps)]

    async def cold_in(self, app: str, max_wait: float) -> CreateTurn:
        return await self._limits[app].cold(max_wait)

    async def soonest_app(self) -> str:
        """The app whose next token comes soonest."""
        looks = {app: await self._limits[app].look() for app in self.apps}
        return min(self.apps, key=lambda a: looks[a].wait)

    async def cold(self, max_wait: float) -> CreateTurn:
        """A cold launch's token in the app that would give it soonest (a session's own machine
        uses `cold_in` its app instead)."""
        return await self._limits[await self.soonest_app()].cold(max_wait)

    async def refill(self) -> CreateTurn:
        """A token now for a reserve launch from the app with the most spare ones (one always left
        for a cold start in each); the launch that follows uses that app (`refilled_app`)."""
        looks = {app: await self._limits[app].look() for app in self.apps}
        app = max(self.apps, key=lambda a: looks[a].spare)
        turn = await self._limits[app].refill()
        if turn.granted:
            self._refilled.append(app)
        return CreateTurn(turn.granted, turn.wait, sum(t.spare for t in looks.values()) - int(turn.granted))

    async def look(self) -> CreateTurn:
        looks = [await self._limits[app].look() for app in self.apps]
        return CreateTurn(False, max(t.wait for t in looks), sum(t.spare for t in looks))

    def refilled_app(self) -> str | None:
        """The app whose token the reserve's refill took for the launch now under way, if one did."""
        return self._refilled.popleft() if self._refilled else None
