"""The honest wait: how long a start that cannot be warm will take, told to its caller.

The figures come from this deployment's last measured cold starts (dispatcher/reserve/start_times.py,
every replica's, kept in the store), or before any is measured from the provider's published
cold start (`RESERVE_COLD_START_SECONDS`), and the answer says which (`basis`: `measured` or
`default`). A session `starting` is told what is left of its wait, counted from its launch: the
median of the measured starts that took at least as long as it has waited, less that wait, which
never grows while the start runs late. A caller may say how long it will wait
(`maxWaitSeconds`): a start whose 90 % bound, plus its turn for a create under the provider's
limit, is longer is refused at once unless a warm bot takes it (`too_slow`).
Without a reserve (a provider with no warm form, or no bot channel) nothing is measured: the
figures are the provider's published cold start with its assumed spread.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from dispatcher.errors import ApiError
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine, MachineState
from dispatcher.reserve.reserve import NoWarmBot, Reserve
from dispatcher.reserve.sizer import COLD_SIGMA
from dispatcher.reserve.start_times import StartTimes


class ReadyEstimate:
    def __init__(
        self, times: Callable[[], StartTimes], launch_wait: Callable[[], float],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._times = times  # read at each answer: the measured starts are refitted as they come
        self._launch_wait = launch_wait
        self._clock = clock  # epoch seconds, as providers give a machine's `created_at`

    @classmethod
    def of(cls, reserve: Reserve | None, unmeasured_seconds: float,
           unmeasured_sigma: float = COLD_SIGMA) -> ReadyEstimate:
        """The deployment's measured cold starts, or (no reserve) the provider's published one."""
        if reserve is not None:
            return cls(lambda: reserve.start_times, reserve.launch_wait)
        unmeasured = StartTimes.fitted(unmeasured_seconds, unmeasured_sigma, ())
        return cls(lambda: unmeasured, lambda: 0.0)

    def before_launch(self) -> float:
        """Seconds within which a cold start asked for now is ready, 9 times in 10 (the bound a
        caller's `maxWaitSeconds` is held to)."""
        return _shown(self._launch_wait() + self._times().quote())

    def remaining(self, machine: Machine) -> float | None:
        """Seconds still to wait for a `starting` machine, counted from its launch; None past it."""
        seconds = self._left(machine)
        return None if seconds is None else _shown(seconds)

    def ready_at(self, machine: Machine) -> float | None:
        """The moment (epoch seconds) a `starting` machine is told it will be ready; None past it."""
        seconds = self._left(machine)
        return None if seconds is None else self._clock() + seconds

    def basis(self) -> str:
        """`default` while no start of this deployment is measured (the provider's published
        figure), else `measured`."""
        return "measured" if self._times().measured else "default"

    def _left(self, machine: Machine) -> float | None:
        if machine.state is not MachineState.STARTING:
            return None
        return self._times().remaining(self._clock() - machine.created_at)


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
