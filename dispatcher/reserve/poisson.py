"""How many bots cover a Poisson number of arrivals with a given probability.

Starts arrive independently of each other, so the number that arrive during a lead time with
`mean` expected arrivals is Poisson. A stock of `poisson_quantile(mean, p)` ready bots is enough
for every one of them with probability at least `p` (the base-stock level of inventory theory).
Exact for small means, where the discreteness matters (0.3 expected arrivals and 4 are very
different stocks); above `EXACT_UP_TO` the Cornish-Fisher normal approximation is within one bot
and costs no loop over hundreds of terms.
"""

from __future__ import annotations

import math
from statistics import NormalDist

EXACT_UP_TO = 50.0


def poisson_quantile(mean: float, p: float) -> int:
    """The smallest k with P(N <= k) >= p for N ~ Poisson(mean)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"a quantile needs 0 < p < 1, not {p!r}")
    if not math.isfinite(mean) or mean < 0:
        raise ValueError(f"a Poisson mean must be finite and not negative, not {mean!r}")
    if mean == 0:
        return 0
    if mean > EXACT_UP_TO:
        z = NormalDist().inv_cdf(p)
        # Cornish-Fisher: the Poisson's skew (1/sqrt(mean)) shifts the normal quantile by (z² - 1)/6.
        return max(0, math.ceil(mean + z * math.sqrt(mean) + (z * z - 1) / 6 - 0.5))
    term = math.exp(-mean)
    total, k = term, 0
    # The sum of the terms can round to just under 1: a p closer to 1 than that ends at the tail.
    tail = mean + 40 * math.sqrt(mean) + 40
    while total < p and k < tail:
        k += 1
        term *= mean / k
        total += term
    return k
