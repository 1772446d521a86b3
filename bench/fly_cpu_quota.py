"""Whether a call's bot stays within Fly's CPU quota on each Machine size, and what each size costs.

    uv run python -m bench.fly_cpu_quota --call-minutes 20

A computation, not a measurement on Fly. Its inputs, each a flag:
- Fly's quota (fly.io/docs/machines/cpu-performance): a shared vCPU may run 5 ms of each 80 ms period
  (1/16 of a core, 6.25 %), the quota shared by a Machine's vCPUs (shared-cpu-4x: 20 ms, 25 %); a
  performance vCPU runs the whole period. Time left unused accrues as a balance, at most 500 s, spent
  at up to 100 % above the quota; once it is gone the Machine is held to its quota. A new Machine's
  balance is 5 s (as pipecat-ai/docs#1330 quotes Fly). The balance is taken as the Machine's, whatever
  its vCPUs (Fly's page does not say): conservative for the larger sizes.
- The bot's CPU while talking: 18 % of one core (docs/performance.md, "bot CPU per session while
  talking"), and 20 % as pipecat-ai/docs#1330 measured a telephony bot on Fly (`fly_instance_cpu`).
- Its start-up: 0.59 s of CPU, spawn to ready (docs/performance.md), at up to a whole core.
- Prices a month (730 h) from Fly's per-second list (fly.io/blog/new-vms-more-ram-extra-cpu-and-a-dollar-menu,
  as dispatcher/reserve/prices.py prices shared-cpu-1x with 1 GB, $5.78): a shared vCPU with its 256 MB
  $0.0000008/s, the memory past that at shared-cpu-1x's 1 GB less its 256 MB ($0.0000014/s for
  768 MB), performance-1x with 2 GB $0.0000120/s. Sizes other than those listed are derived so.

A size keeps a call within its quota when the call's need above the quota (the bot's CPU less the
quota, for the call's length) fits the balance it starts with; past that the bot runs at quota/CPU of
real time and its audio falls behind: the silence #1330 reports. The reasoning is in docs/providers.md.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

PERIOD_MS, SHARED_QUOTA_MS = 80.0, 5.0
MAX_BALANCE_SECONDS, NEW_BALANCE_SECONDS = 500.0, 5.0
BOT_CPU_OURS, BOT_CPU_TELEPHONY = 0.18, 0.20
START_CPU_SECONDS = 0.59
MONTH_SECONDS = 730 * 3600
SHARED_VCPU_PER_SECOND, EXTRA_GB_PER_SECOND = 0.0000008, 0.0000014 / 0.75
PERFORMANCE_1X_PER_SECOND = 0.0000120


@dataclass(frozen=True)
class Size:
    name: str
    kind: str  # "shared" or "performance"
    cpus: int
    memory_mb: int

    @property
    def quota(self) -> float:
        """The share of one core the Machine may use with no balance (its vCPUs together)."""
        return self.cpus * (SHARED_QUOTA_MS / PERIOD_MS if self.kind == "shared" else 1.0)

    @property
    def dollars_a_month(self) -> float:
        if self.kind == "performance":
            assert self.memory_mb == 2048 * self.cpus, "priced: performance sizes with 2 GB per vCPU"
            return PERFORMANCE_1X_PER_SECOND * self.cpus * MONTH_SECONDS
        extra_gb = max(0.0, self.memory_mb / 1024 - self.cpus * 0.25)
        return (self.cpus * SHARED_VCPU_PER_SECOND + extra_gb * EXTRA_GB_PER_SECOND) * MONTH_SECONDS


SIZES = (Size("shared-cpu-1x", "shared", 1, 1024), Size("shared-cpu-2x", "shared", 2, 1024),
         Size("shared-cpu-4x", "shared", 4, 1024), Size("shared-cpu-8x", "shared", 8, 2048),
         Size("performance-1x", "performance", 1, 2048))


@dataclass(frozen=True)
class Verdict:
    size: Size
    bot_cpu: float
    need_seconds: float  # CPU-seconds above the quota over the call
    cold_balance: float  # what a new Machine's balance is once its bot is ready
    throttled_after: float | None  # seconds into the call, from a new Machine; None: never
    idle_to_earn: float | None  # seconds a warm bot must idle first to have `need_seconds`; None: cannot

    @property
    def within_quota(self) -> bool:
        return self.throttled_after is None

    @property
    def headroom(self) -> float:
        """The quota over the bot's CPU: ≥ 1 sustains any call length."""
        return self.size.quota / self.bot_cpu


def verdict(size: Size, bot_cpu: float, call_seconds: float, *, start_cpu: float = START_CPU_SECONDS,
            new_balance: float = NEW_BALANCE_SECONDS, idle_cpu: float = 0.0) -> Verdict:
    """A call of `call_seconds` on a new Machine of `size` whose bot uses `bot_cpu` of a core."""
    above = max(0.0, bot_cpu - size.quota)
    need = above * call_seconds
    # Start-up runs at a whole core for `start_cpu` seconds, the quota's share of that time free.
    cold = max(0.0, min(MAX_BALANCE_SECONDS, new_balance) - max(0.0, start_cpu - size.quota * start_cpu))
    throttled = None if above == 0 or cold >= need else cold / above
    earn_rate = size.quota - idle_cpu
    idle = 0.0 if need <= cold else ((need - cold) / earn_rate if need <= MAX_BALANCE_SECONDS and earn_rate > 0
                                      else None)
    return Verdict(size, bot_cpu, need, cold, throttled, idle)


def smallest_within(bot_cpus: tuple[float, ...], call_seconds: float, headroom: float) -> Size:
    """The cheapest size that keeps every `bot_cpus` call within its quota with `headroom` to spare."""
    fits = [s for s in SIZES if all(verdict(s, c * headroom, call_seconds).within_quota for c in bot_cpus)]
    return min(fits, key=lambda s: s.dollars_a_month)


def _minutes(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds / 60:.1f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--call-minutes", type=float, default=20.0)
    parser.add_argument("--bot-cpu", type=float, action="append",
                        help=f"the bot's share of a core talking (default {BOT_CPU_OURS} and {BOT_CPU_TELEPHONY})")
    parser.add_argument("--headroom", type=float, default=1.2, help="the margin a default size must keep")
    args = parser.parse_args()
    call = args.call_minutes * 60
    cpus = tuple(args.bot_cpu or (BOT_CPU_OURS, BOT_CPU_TELEPHONY))
    print(f"a {args.call_minutes:g}-minute call on a new Machine (Fly: 5 ms of 80 per shared vCPU, balance "
          f"{NEW_BALANCE_SECONDS:g} s new, {MAX_BALANCE_SECONDS:g} s at most)")
    print(f"{'size':<15} {'$/month':>8} {'quota':>6} {'bot CPU':>7} {'quota/CPU':>9} {'need':>8} "
          f"{'throttled after':>15} {'idle first to earn it':>22}")
    for size in SIZES:
        for cpu in cpus:
            v = verdict(size, cpu, call)
            idle = "-" if v.idle_to_earn == 0 else ("more than the 500 s balance holds" if v.idle_to_earn is None
                                                    else _minutes(v.idle_to_earn))
            print(f"{size.name:<15} {size.dollars_a_month:>8.2f} {size.quota:>6.2%} {cpu:>7.0%} {v.headroom:>9.2f} "
                  f"{v.need_seconds:>7.0f}s {_minutes(v.throttled_after):>15} {idle:>22}")
    chosen = smallest_within(cpus, call, args.headroom)
    print(f"cheapest size within its quota for every call length with {args.headroom:g}x headroom: {chosen.name} "
          f"(${chosen.dollars_a_month:.2f} a month)")


if __name__ == "__main__":
    main()
