"""One replica's per-key start rate (GCRA), exactly at the edges where float arithmetic rounds."""

from __future__ import annotations

import pytest

from dispatcher.store.memory import LocalRate

# A monotonic clock value at which (now + 100) - 100 > now in binary floating point: the first call
# of a caller with a burst of 1 at 0.01/s was refused there (seen as a 429 on a fresh key).
ROUNDING_NOW = 1998.4112551393034


async def test_a_fresh_callers_first_call_passes_at_a_clock_value_that_rounds() -> None:
    assert (ROUNDING_NOW + 100) - 100 > ROUNDING_NOW  # the value still rounds as it did
    rate = LocalRate(per_second=0.01, burst=1, clock=lambda: ROUNDING_NOW)
    assert await rate.take("key") == 0.0
    assert await rate.take("key") == pytest.approx(100.0)
    assert await rate.take("other") == 0.0  # per caller


async def test_a_burst_passes_then_the_rate_holds() -> None:
    clock = [ROUNDING_NOW]
    rate = LocalRate(per_second=2.0, burst=3, clock=lambda: clock[0])
    assert [await rate.take("key") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await rate.take("key") == pytest.approx(0.5)
    clock[0] += 0.5
    assert await rate.take("key") == 0.0
    assert await rate.take("key") == pytest.approx(0.5)
