"""What the reserve does now: how many bots to launch under the provider's limit, which to retire.

Pure, like the sizing (dispatcher/reserve/policy.py): the reserve calls `plan_reserve` after
every claim, hello and tick with what it holds, and carries the plan out. The simulator
(bench/reserve_sim.py) calls the same function.

Rules, and why:
- A refill never takes the provider's last create token (`LaunchTokens.spare`): a start that
  finds the reserve empty launches cold at once instead of queueing behind refills. Every
  launch, cold or refill, is recorded with `spend`, so the mirror matches the provider's bucket
  (Fly: 1 create/s per app, burst 3; ECS RunTask 20/s; GCE inserts, see dispatcher/machines/).
- Idle bots of another image, and those idle for RESERVE_MAX_IDLE_SECONDS, are retired: an idle
  machine never runs stale code for long.
- A bot within one cold start of its maximum age no longer counts toward the target, so its
  replacement is launched early and is ready when it retires.
- Surplus (idle + warming above the target) retires the oldest idle bots, but only those idle
  for at least RESERVE_SCALEDOWN_SECONDS (bots claimed oldest-first turn over faster than that while
  they are needed, so noise in the rate estimate does not launch and retire the same bot), and
  never below the ready stock while warming replacements have yet to land.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from dispatcher.reserve.policy import ReserveSettings, ReserveSize


@dataclass
class LaunchTokens:
    """A mirror of the provider's create limit (a token bucket on a clock the caller passes)."""

    per_second: float
    burst: int
    _tokens: float = field(init=False)
    _updated: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a launch limit needs a positive rate and a burst of at least 1")
        self._tokens = float(self.burst)

    def available(self, now: float) -> float:
        if self._updated is not None and now > self._updated:
            self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.per_second)
        self._updated = now if self._updated is None else max(now, self._updated)
        return self._tokens

    def spend(self, now: float, count: int = 1) -> None:
        """Record `count` launches. Tokens may go negative: a cold launch queued behind the limit."""
        self._tokens = self.available(now) - count

    def seconds_until_token(self, now: float) -> float:
        """How long a launch asked for at `now` waits for its token (0 if one is there)."""
        return max(0.0, (1.0 - self.available(now)) / self.per_second)

    def spare(self, now: float) -> int:
        """Whole tokens a refill may take now, leaving one for a cold start (when the burst allows)."""
        headroom = min(1, self.burst - 1)
        return max(0, math.floor(self.available(now) - headroom + 1e-9))


@dataclass(frozen=True)
class IdleBot:
    bot_id: str
    idle_since: float  # when the bot said hello, on the caller's clock
    image: str  # the bot image digest it runs


@dataclass(frozen=True)
class ReservePlan:
    launch: int
    retire: tuple[str, ...]


def claim_order(idle: Sequence[IdleBot], image: str) -> list[IdleBot]:
    """Bots a start may claim, best first: the current image only, oldest first (FIFO turns the
    reserve over, so bots are used before they age out)."""
    return sorted((b for b in idle if b.image == image), key=lambda b: b.idle_since)


def plan_reserve(
    idle: Sequence[IdleBot],
    *,
    warming: int,
    size: ReserveSize,
    now: float,
    image: str,
    settings: ReserveSettings,
    cold_start_seconds: float,
    spare_launches: int,
) -> ReservePlan:
    """Launches and retirements that bring idle + warming to `size.total` (see the module docstring).

    `spare_launches` is `LaunchTokens.spare(now)` of the provider's mirror bucket.
    """
    max_idle_seconds = settings.max_idle_seconds
    stale = [b for b in idle if b.image != image or now - b.idle_since >= max_idle_seconds]
    stale_ids = {b.bot_id for b in stale}
    fresh = sorted((b for b in idle if b.bot_id not in stale_ids), key=lambda b: b.idle_since)
    expiring = [b for b in fresh if now - b.idle_since >= max_idle_seconds - cold_start_seconds]
    counted = len(fresh) - len(expiring) + warming
    retire = [b.bot_id for b in stale]
    if counted < size.total:
        return ReservePlan(launch=max(0, min(size.total - counted, spare_launches)), retire=tuple(retire))
    keep = min(len(fresh), max(size.total - warming, size.ready))
    idle_long = [b for b in fresh if now - b.idle_since >= settings.scaledown_seconds]
    retire += [b.bot_id for b in idle_long[: len(fresh) - keep]]
    return ReservePlan(launch=0, retire=tuple(retire))
