"""One simulated day, summed up: what the table prints and what the goals judge."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.reserve_sim_model import Result
from bench.reserve_sim_providers import HOURS_PER_MONTH, Prices

GOAL_P95_SECONDS, GOAL_IDLE_SHARE, GOAL_QUIET_HOT = 3.0, 0.20, 2.0


@dataclass(frozen=True)
class Row:
    provider: str
    per_minute: float
    starts: int
    warm: float  # share of starts claimed hot or frozen
    frozen: float  # share of starts that resumed a frozen bot
    refused: int
    p50: float
    p95: float
    idle_share: float
    mean_hot: float
    mean_frozen: float
    peak_hot: int
    peak_frozen: int
    peak_sessions: int
    hot_month: float  # $ a month for the idle running bots
    frozen_month: float  # $ a month for the frozen ones
    sessions_month: float  # $ a month for the sessions' machines, for scale
    quotes_kept: float  # share of cold starts ready within the wait they were told (nan: none was cold)
    deleted_booting: int = 0  # machines deleted before their bot was up: cold starts paid for and lost
    deleted_booting_month: float = 0.0  # $ a month for their time

    def verdict(self) -> str:
        misses = []
        if self.p95 > GOAL_P95_SECONDS:
            misses.append("p95")
        if self.refused:
            misses.append("refusals")
        if self.per_minute >= 10 and self.idle_share > GOAL_IDLE_SHARE:
            misses.append("idle share")
        if self.per_minute <= 1 and self.mean_hot > GOAL_QUIET_HOT:
            misses.append("quiet idle")
        return "meets" if not misses else "misses " + ", ".join(misses)


def summarise(result: Result, prices: Prices) -> Row:
    starts = max(1, result.arrivals)
    per_month = HOURS_PER_MONTH / result.seconds  # machine-seconds in the run → machines × a month's hours
    return Row(
        provider=result.provider,
        per_minute=result.per_minute,
        starts=result.arrivals,
        warm=result.warm / starts,
        frozen=result.frozen_claims / starts,
        refused=result.refused + result.refused_cap,
        p50=result.percentile(0.5),
        p95=result.percentile(0.95),
        idle_share=result.idle_share,
        mean_hot=result.mean("hot"),
        mean_frozen=result.mean("frozen"),
        peak_hot=result.peak_hot,
        peak_frozen=result.peak_frozen,
        peak_sessions=result.peak_sessions,
        hot_month=result.machine_seconds["hot"] * per_month * prices.running_per_hour,
        frozen_month=result.machine_seconds["frozen"] * per_month * prices.frozen_per_hour,
        sessions_month=result.machine_seconds["busy"] * per_month * prices.running_per_hour,
        quotes_kept=result.quotes_kept / result.quotes_told if result.quotes_told else math.nan,
        deleted_booting=result.deleted_booting,
        deleted_booting_month=result.deleted_boot_seconds * per_month * prices.running_per_hour,
    )


HEADER = ("provider", "/min", "starts", "warm", "frozen", "refused", "p50 s", "p95 s", "idle",
          "hot idle", "frozen", "peak hot", "peak frz", "hot $/mo", "frozen $/mo", "cold told",
          "deleted booting", "goals")


def seconds(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.1f}"


def header() -> str:
    return "| " + " | ".join(HEADER) + " |\n|" + "---|" * len(HEADER)


def deleted(r: Row) -> str:
    return f"{r.deleted_booting:,} (${r.deleted_booting_month:,.0f}/mo)" if r.deleted_booting else "0"


def line(r: Row) -> str:
    cells = (r.provider, f"{r.per_minute:g}", str(r.starts), f"{r.warm:.1%}", f"{r.frozen:.1%}", str(r.refused),
             seconds(r.p50), seconds(r.p95), f"{r.idle_share:.1%}", f"{r.mean_hot:.1f}", f"{r.mean_frozen:.1f}",
             str(r.peak_hot), str(r.peak_frozen), f"${r.hot_month:,.0f}", f"${r.frozen_month:,.0f}",
             "–" if math.isnan(r.quotes_kept) else f"{r.quotes_kept:.0%}", deleted(r), r.verdict())
    return "| " + " | ".join(cells) + " |"
