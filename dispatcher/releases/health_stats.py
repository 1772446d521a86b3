"""The two statistics automatic rollback rests on, in pure Python (no SciPy in the dispatcher):

- `probability_worse`: with a uniform prior on each release's failure rate, the posterior
  probability that the canary's rate exceeds the stable's by more than a margin (Beta posteriors,
  integrated numerically against the regularized incomplete beta function).
- `quantile_ranks`: distribution-free confidence bounds on a quantile from order statistics (which
  sorted sample is below, or above, the true quantile with a given confidence), exact for any
  continuous distribution, so a latency's long tail cannot fool them.
"""

from __future__ import annotations

import math
from functools import lru_cache

_GRID = 120  # midpoints across the stable posterior's ±8 standard deviations (0.13 sd apart)


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the Beta(a, b) distribution function at x."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # The continued fraction converges fast on this side of the mean; the other side by symmetry.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) by Lentz's method (Numerical Recipes' betacf)."""
    tiny, eps = 1e-300, 1e-13
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 1_000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < eps:
            break
    return fraction


@lru_cache(maxsize=4_096)
def probability_worse(failed: int, sessions: int, stable_failed: int, stable_sessions: int, margin: float) -> float:
    """P(canary's failure rate > stable's + margin | what each release saw), uniform priors."""
    a, b = failed + 1.0, sessions - failed + 1.0
    a_s, b_s = stable_failed + 1.0, stable_sessions - stable_failed + 1.0
    mean = a_s / (a_s + b_s)
    spread = 8.0 * math.sqrt(a_s * b_s / ((a_s + b_s) ** 2 * (a_s + b_s + 1.0)))
    low, high = max(0.0, mean - spread), min(1.0, mean + spread)
    step = (high - low) / _GRID
    log_norm = math.lgamma(a_s + b_s) - math.lgamma(a_s) - math.lgamma(b_s)
    total = weight_sum = 0.0
    for i in range(_GRID):
        y = low + (i + 0.5) * step
        weight = math.exp(log_norm + (a_s - 1.0) * math.log(y) + (b_s - 1.0) * math.log1p(-y))
        weight_sum += weight
        total += weight * (1.0 - regularized_beta(a, b, y + margin))
    return total / weight_sum if weight_sum > 0.0 else 0.0


def _binomial_cdf(n: int, q: float) -> list[float]:
    """[P(Binomial(n, q) <= k) for k in 0..n]."""
    log_q, log_p = math.log(q), math.log1p(-q)
    total, cdf, log_n = 0.0, [], math.lgamma(n + 1)
    for k in range(n + 1):
        total += math.exp(log_n - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_q + (n - k) * log_p)
        cdf.append(min(1.0, total))
    return cdf


@lru_cache(maxsize=4_096)
def quantile_ranks(n: int, q: float, alpha: float) -> tuple[int | None, int | None]:
    """1-based ranks (lower, upper) in a sorted sample of n such that the sample at `lower` is at
    or below the true q-quantile, and the one at `upper` at or above it, each with probability
    ≥ 1 − alpha; None where n is too small for that confidence."""
    cdf = _binomial_cdf(n, q)
    # x(l) ≤ ξq  ⟺  at least l of n samples fall at or below ξq: P(Bin(n, q) ≥ l) = 1 − cdf[l − 1].
    lower = max((rank for rank in range(1, n + 1) if cdf[rank - 1] <= alpha), default=None)
    # x(u) ≥ ξq  ⟺  fewer than u samples fall at or below ξq: P(Bin(n, q) ≤ u − 1) = cdf[u − 1].
    upper = min((rank for rank in range(1, n + 1) if cdf[rank - 1] >= 1.0 - alpha), default=None)
    return lower, upper
