"""What the planning lease holder keeps in the store, on the wall clock it is given."""

from __future__ import annotations

from dispatcher.reserve.fleet import SAVE_EVERY_SECONDS, FleetPlanning
from dispatcher.reserve.planner import PlannerSettings, Tiers
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.releases import DEFAULT_ONLY
from dispatcher.store.local import LocalClaims
from dispatcher.store.memory import LocalCreateLimit, LocalPool

MONDAY = 1795392000.0
SETTINGS = ReserveSettings(min_idle=1, buffer=0.0, max_idle=200, cold_start_seconds=40.0)
TIERS = Tiers(frozen=False, resume_seconds=0.0, create_per_second=20.0)


async def test_a_wall_clock_stepped_back_does_not_stop_the_planner_saving_what_it_learnt() -> None:
    """NTP may step the wall clock back: the holder still saves every SAVE_EVERY_SECONDS, so a
    replica taking over after a crash carries on from recent starts, not from before the step."""
    pool = LocalPool()
    planning = FleetPlanning(pool, LocalClaims(), SETTINGS, PlannerSettings(), TIERS, LocalCreateLimit(20.0, 10))
    await planning.tick(MONDAY + 3600.0, [(DEFAULT_ONLY[0], "bot:1")])  # saved
    stepped = MONDAY  # the clock stepped back an hour
    await pool.arrived(stepped, cold=False)
    await planning.tick(stepped + SAVE_EVERY_SECONDS, [(DEFAULT_ONLY[0], "bot:1")])
    saved = await pool.load()
    assert saved is not None and saved["last_starts"] == [stepped]
