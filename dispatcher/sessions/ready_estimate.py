"""The honest wait: how long a start that cannot be warm will take, told to its caller.

A cold start is quoted the 90 % quantile of the measured cold starts (dispatcher/reserve/wait.py:
a lognormal that moves toward what this deployment measures), plus the start's turn for a create
under the provider's limit. While a session is `starting` the quote counts down from its launch
(the conditional quantile: a start running late is told more, never a false "0 s"). A caller
may say how long it will wait (`maxWaitSeconds`): a start quoted longer is refused at once
unless a warm bot takes it (`too_slow`).
Without a reserve (a provider with no warm form, or no bot channel) nothing is measured: the quote
is the provider's published cold start with its assumed spread.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from dispatcher.errors import ApiError
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine, MachineState
from dispatcher.reserve.reserve import NoWarmBot, Reserve
from dispatcher.reserve.sizer import COLD_SIGMA
from dispatcher.reserve.wait import DurationEstimate


class ReadyEstimate:
    def __init__(
        self, cold: Callable[[], DurationEstimate], launch_wait: Callable[[], float],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cold = cold  # read at each quote: the planner's state is reloaded, a new estimate each time
        self._launch_wait = launch_wait
        self._clock = clock  # epoch seconds, as providers give a machine's `created_at`

    @classmethod
    def of(cls, reserve: Reserve | None, unmeasured_seconds: float) -> ReadyEstimate:
        """The reserve's measured cold starts, or (no reserve) the provider's published one."""
        if reserve is not None:
            return cls(lambda: reserve.cold_wait, reserve.launch_wait)
        unmeasured = DurationEstimate(unmeasured_seconds, sigma=COLD_SIGMA)
        return cls(lambda: unmeasured, lambda: 0.0)

    def before_launch(self) -> float:
        """Seconds to a ready bot for a cold start asked for now."""
        return _shown(self._launch_wait() + self._cold().quote())

    def remaining(self, machine: Machine) -> float | None:
        """Seconds still to wait for a `starting` machine, counted from its launch; None past it."""
        if machine.state is not MachineState.STARTING:
            return None
        return _shown(self._cold().quote_after(self._clock() - machine.created_at))


async def never_warm(spec: LaunchSpec) -> LaunchResult:
    """No reserve (the provider has no warm form, or bots no channel): no start is ever warm."""
    raise NoWarmBot(spec.session_id)


async def none_claimable(transport: str, within: float) -> bool:
    """No reserve: no warm bot could take a session of any transport."""
    return False


def too_slow(quote: float, max_wait_seconds: float | None) -> ApiError:
    """A start the caller would not wait for (`maxWaitSeconds`): refused, nothing left started."""
    assert max_wait_seconds is not None  # only a caller who gave their patience is refused
    return ApiError(
        503,
        "cold_start_too_slow",
        f"no warm bot is free and a cold start takes up to {quote:g} s, over maxWaitSeconds {max_wait_seconds:g}; "
        "nothing was started",
        retry_after=quote,
        extra={"ready_in_seconds": quote},
    )


def _shown(seconds: float) -> float:
    """Tenths of a second, rounded up: a client is never told less than the estimate."""
    return math.ceil(seconds * 10) / 10
