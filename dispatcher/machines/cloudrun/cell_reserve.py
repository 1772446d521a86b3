"""`MACHINES=cloudrun` with `CLOUDRUN_CELLS` and a bot channel: the warm reserve over the cells' projects
(docs/operations.md, "The warm reserve over Cloud Run cells").

Each cell's reserve executions are the single-project reserve's (cloudrun/reserve.py), run by that cell's
own provider; refills, look-ups, listing and a lost cell are dispatcher/machines/cell_reserve.py's. A refill
takes its `jobs.run` token from the cell's own `cloudrun:<cell>` bucket; a 429 or a refused grant drains the
cell as a cold run's would.

A Cloud Run token names only the bots' service account: a reserve bot is admitted when its token is the bots'
of the project its execution is read in and carries that execution's nonce (cloudrun/identity.py). A bot the
store records as claimed is refused before any cell is asked; one found in no cell is not looked for again for
a short while (RecentMisses), so fresh tokens cannot make each hello cost reads in every project.

An execution cannot be re-tagged, so a claim is a store record: the session's cell first
(`home:cloudrun-cell:<session>`), then the bot claimed (once, first wins), then the claim's records naming
the cell. A claim that fails before the bot is the session's lets the cell's record go; one that fails after
keeps it, since the execution may run as the session's.
"""

from __future__ import annotations

from dispatcher.machines.base import LaunchResult, LaunchSpec
from dispatcher.machines.cell_reserve import CellReserve
from dispatcher.machines.cells import DRAIN_BASE_SECONDS
from dispatcher.machines.cloudrun.cells import CloudRunCellMachines
from dispatcher.machines.cloudrun.executions import IDLE_BOT, execution_env, to_machine
from dispatcher.machines.cloudrun.identity import RunningExecution
from dispatcher.machines.cloudrun.provider import CloudRunMachines
from dispatcher.machines.cloudrun.reserve import CloudRunWarmMachines, bot_claim, claim_records
from dispatcher.machines.cloudrun.settings import CloudRunSettings
from dispatcher.machines.recent_misses import RecentMisses
from dispatcher.outbound.ratelimit import Rate
from dispatcher.recent import Recent
from dispatcher.store.coordination import Coordination


class CloudRunCellWarmMachines(CellReserve, CloudRunCellMachines):
    def __init__(self, settings: CloudRunSettings, coordination: Coordination, *, channel_secret: str,
                 max_idle_seconds: float, max_session_seconds: int, drain_base: float = DRAIN_BASE_SECONDS) -> None:
        """`channel_secret`: BOT_CHANNEL_TOKEN, which keys the claims' records; `max_idle_seconds`,
        `max_session_seconds`: a reserve execution's life (cloudrun/reserve.py)."""
        self._secret, self._lifetime = channel_secret, (max_idle_seconds, max_session_seconds)
        self._records = claim_records(coordination, channel_secret)  # every cell's claims, in one place
        # Idle bots report the deployment's job (CLOUDRUN_PROJECT's), whichever project runs its own job
        # of that name: a claim compares the hello's image with it.
        self.bot_image = settings.job_path
        self._warm = {}
        self._bot_cells = Recent()
        self._not_idle = RecentMisses()  # bots whose idle hello found no unclaimed execution, a short while
        super().__init__(settings, coordination, drain_base=drain_base)
        self._start_reserve()  # the reserve's refills: the cells' own buckets

    def _member(self, settings: CloudRunSettings, coordination: Coordination, cell: str) -> CloudRunMachines:
        max_idle_seconds, max_session_seconds = self._lifetime
        member = CloudRunWarmMachines(settings, coordination=coordination, channel_secret=self._secret,
                                      max_idle_seconds=max_idle_seconds, max_session_seconds=max_session_seconds,
                                      auth=self._auth, cell=cell, reports=self.bot_image, records=self._records)
        self._warm[cell] = member
        return member

    async def _claim_in(self, cell: str, bot_id: str, spec: LaunchSpec) -> LaunchResult:
        """The session's cell recorded, then the bot claimed there. Recorded after the claim, a record that
        went to another cell meanwhile would leave the claim naming this cell's execution, which no
        retirement cancels (it is the session's); recorded first, a claim that fails lets it go."""
        holder, earlier = await self._holder(spec, cell)
        self._launched_elsewhere(spec, bot_id, cell, holder)
        try:
            return await self._reserve_in(cell).adopt(bot_id, spec)
        except BaseException:
            if not earlier and not await self._claimed_for(cell, bot_id, spec):
                await self._let_go(spec, cell)  # nothing of this session runs: its cold start may go anywhere
            raise

    async def _claimed_for(self, cell: str, bot_id: str, spec: LaunchSpec) -> bool:
        """Whether the bot's claim is the session's, so its execution may run as the session's (a claim
        that failed after its records were written): the cell's record then stays, the one way any
        replica's `status` or `stop` finds it. A store that does not answer counts as claimed: a record
        kept at worst sends the session's cold start to that cell; one let go could lose an execution."""
        try:
            return await self._reserve_in(cell).claim_holder(bot_id) == spec.session_id
        except Exception:
            return True

    async def _idle_running(self, bot_id: str, session_id: str | None) -> RunningExecution | None:
        """Reserve bot `bot_id`'s running execution and its cell: idle, in the cell it was run or proved in,
        else the one cell holding it unclaimed; claimed (its hello names its session), the session's own
        execution, in the cell the store records for the session, when it is the bot's."""
        if session_id is not None:
            return await self._claimed_running(bot_id, session_id)
        if bot_id in self._not_idle:  # refused a moment ago: no cell is asked again yet
            return None
        found = await self._unclaimed_running(bot_id)
        if found is None:
            self._not_idle.add(bot_id)
        return found

    async def _unclaimed_running(self, bot_id: str) -> RunningExecution | None:
        # The claim first, whether its cell is known here or not, and before any cell is asked: a claimed
        # (or retired) bot's idle hello is refused by the store alone, not left to the one-use record
        # (which does not hold while the store is down), nor paid for in reads of every project.
        if await bot_claim(self._holders, bot_id) is not None:
            return None
        if (cell := await self._cell_of_bot(bot_id)) is None:
            return None
        member = self._reserve_in(cell)
        raw = await member.idle_execution(bot_id)
        return member.read_here(raw, cell) if raw is not None and to_machine(raw).state.is_active else None

    async def _claimed_running(self, bot_id: str, session_id: str) -> RunningExecution | None:
        if (found := await self.find(session_id)) is None:
            return None
        member = self._members[found[0]]
        raw = await member.running_execution(session_id)
        return member.read_here(raw, found[0]) if raw is not None and execution_env(raw).get(IDLE_BOT) == bot_id \
            else None

    def _reserve_in(self, cell: str) -> CloudRunWarmMachines:
        member = self._members[cell]
        assert isinstance(member, CloudRunWarmMachines)  # `_member` makes every cell's
        return member

    @property
    def create_rate(self) -> Rate:
        return self.settings.run_rate
