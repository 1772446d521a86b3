"""A provider's create limit, counted once for the deployment: the one implementation every cloud
provider uses (Fly per app, ECS RunTask, Compute Engine inserts).

Every create takes its token from the deployment's one count (`Coordination.create_limit`), so N
replicas still create at the provider's rate. Cold launches go first: one reserves the next token
even when it is due later (waiting at most the rate's `max_wait`, else refused
`<provider>_rate_limited` with `retry_after`); a refill takes one only while another remains for a
cold start. A limit may be split into groups counted apart (Fly: `fly:<app>`; a session's cold
machine goes to the group its id hashes to), and other app-wide actions share the mechanism under
their own names (Fly's lists, `fly-list:<app>`, take their turn as a cold launch does).
docs/replicas.md lists the store's `create:` keys.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from collections.abc import Mapping

from dispatcher.machines.base import MachinesError
from dispatcher.outbound.ratelimit import Rate
from dispatcher.store.coordination import CreateLimit, CreateLimits, CreateTurn


class Creates:
    def __init__(self, provider: str, coordination: CreateLimits, rate: Rate, groups: tuple[str, ...] = (),
                 action: str = "create", shared: Mapping[str, str] | None = None,
                 rates: Mapping[str, Rate] | None = None) -> None:
        """`groups` empty: one count named `provider`; else one count per group, `<provider>:<group>`.
        An `action` other than create counts under `<provider>-<action>` instead of `<provider>`.
        `shared`: a group -> the group whose count it takes from (one limit the cloud counts for both).
        `rates`: a group -> the rate and burst its own count refills at (ACI_CELLS' budgets; a group
        not in it: `rate`'s); a cold start waits at most `rate.max_wait` whatever its group."""
        self.provider = provider
        self.action = action
        self.rate = rate
        self.apps = groups or (provider,)
        name = provider if action == "create" else f"{provider}-{action}"
        owner = {group: (shared or {}).get(group, group) for group in self.apps}
        own = {group: (rates or {}).get(group, rate) for group in dict.fromkeys(owner.values())}
        counts = {group: coordination.create_limit(f"{name}:{group}" if groups else name, own[group].per_second,
                                                   own[group].burst) for group in own}
        self._limits: dict[str, CreateLimit] = {group: counts[owner[group]] for group in self.apps}
        self._refilled: deque[str] = deque()  # groups whose refill token was taken, for the launches that follow

    def app_of(self, session_id: str) -> str:
        """The group a session's cold machine is created in (the same at every replica, every retry)."""
        return self.apps[zlib.crc32(session_id.encode()) % len(self.apps)]

    async def cold_in(self, app: str, max_wait: float) -> CreateTurn:
        return await self._limits[app].cold(max_wait)

    async def soonest_app(self) -> str:
        """The group whose next token comes soonest."""
        if len(self.apps) == 1:
            return self.apps[0]
        looks = {app: await self._limits[app].look() for app in self.apps}
        return min(self.apps, key=lambda a: looks[a].wait)

    async def cold(self, max_wait: float) -> CreateTurn:
        """A cold launch's token in the group that would give it soonest."""
        return await self._limits[await self.soonest_app()].cold(max_wait)

    async def refill(self, among: tuple[str, ...] | None = None) -> CreateTurn:
        """A token now for a reserve launch from the group with the most spare ones (one always
        left for a cold start in each); the launch that follows uses that group (`idle_turn`).
        `among`: the groups that may take one (a cell drained or full takes none); none: no token."""
        apps = self.apps if among is None else tuple(a for a in self.apps if a in among)
        if not apps:
            return CreateTurn(False, 0.0, 0)
        looks = {app: await self._limits[app].look() for app in apps} if len(self.apps) > 1 else {}
        app = max(apps, key=lambda a: looks[a].spare) if looks else apps[0]
        turn = await self._limits[app].refill()
        if turn.granted:
            self._refilled.append(app)
        if not looks:
            return turn
        return CreateTurn(turn.granted, turn.wait, sum(t.spare for t in looks.values()) - int(turn.granted))

    async def refill_retry(self, app: str) -> bool:
        """Whether a reserve launch's retry in `app` may go now: a spare token taken there as a refill takes
        one (one always left for a cold start), never waited for; not noted for a launch to follow."""
        return (await self._limits[app].refill()).granted

    def last_refilled(self) -> str | None:
        """The group whose token the latest granted refill took (not yet used by its launch)."""
        return self._refilled[-1] if self._refilled else None

    async def look(self, among: tuple[str, ...] | None = None) -> CreateTurn:
        """A cold launch's wait (the slowest group's) and the refills' spare tokens, over `among`
        (None: every group)."""
        apps = self.apps if among is None else tuple(a for a in self.apps if a in among)
        if not apps:
            return CreateTurn(False, 0.0, 0)
        looks = [await self._limits[app].look() for app in apps]
        return CreateTurn(False, max(t.wait for t in looks), sum(t.spare for t in looks))

    def refilled_app(self) -> str | None:
        """The group whose token the reserve's refill took for the launch now under way, if one did."""
        return self._refilled.popleft() if self._refilled else None

    async def cold_turn(self, app: str | None = None) -> str:
        """Waits for a cold launch's token in `app` (else the soonest group) and returns the group;
        refused (`<provider>_rate_limited`) when the wait would pass the rate's `max_wait`."""
        app = app if app is not None else await self.soonest_app()
        max_wait = self.rate.max_wait
        turn = await self._limits[app].cold(max_wait)
        if not turn.granted:
            raise MachinesError(f"{self.provider}_rate_limited",
                                f"{self.provider}: the {self.action} limit is spent for {turn.wait:.1f}s "
                                f"(more than {max_wait:g}s)", retry_after=max(turn.wait, 0.1))
        if turn.wait > 0:
            await asyncio.sleep(turn.wait)
        return app

    async def idle_turn(self) -> str:
        """The group a reserve launch creates in: the one whose token the refill just took, else
        (a launch not after a refill) a token waited for as a cold launch does."""
        app = self.refilled_app()
        return app if app is not None else await self.cold_turn()

    async def spend(self) -> None:
        """A token for an action the provider counts with its creates (ACI: deletes), taken without
        waiting: the action goes now, and the creates after it wait for the token it took."""
        await self._limits[self.apps[0]].cold(3600.0)
