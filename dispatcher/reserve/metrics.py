"""The warm reserve's Prometheus metrics, on the app's own registry (dispatcher/observability/metrics.py).

    voicefleet_reserve_bots{state="idle"|"warming"|"frozen"|"freezing"}  gauge: the reserve now
    voicefleet_reserve_tier_cost_dollars_per_month{tier="hot"|"frozen"}  gauge: each tier's size here × its
                                                                 price (hot: every provider; frozen: Fly)
    voicefleet_reserve_thaw_seconds                              a frozen bot's thaw until it is back on the channel
    voicefleet_reserve_claims_total{outcome="warm_hit"|"cold_miss",release}
    voicefleet_start_to_ready_seconds{path="warm"|"cold",release} POST /start → the bot's own `ready` report
    voicefleet_reserve_claim_seconds                             the dispatcher's share of a warm claim
    voicefleet_reserve_idle_machine_seconds_total{state}         the cost of the reserve, in machine-seconds
    voicefleet_reserve_retired_total{reason}                     idle bots stopped, and why
    voicefleet_reserve_failed_bots_total                         bots that never came up, or whose bot file failed
    voicefleet_reserve_backoff_seconds                           gauge: until the next launch after failed bots
    voicefleet_reserve_failed_bots_in_a_row                      gauge: failed bots since the last healthy one
                                                                 (backoff, in a row: the image backing off the most)
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from dispatcher.observability.activity import Activity
from dispatcher.observability.metric_catalogue import CLAIM_BUCKETS, READY_BUCKETS


class ReserveMetrics:
    def __init__(self, registry: CollectorRegistry, provider: str, activity: Activity | None = None) -> None:
        self.provider = provider
        self._activity = activity  # GET /status's charts of the time to ready (None: not charted)
        self._bots = Gauge("voicefleet_reserve_bots", "Reserve bots by state (idle: on the channel, "
                           "waiting; warming: launched, not on the channel yet).", ["provider", "state"],
                           registry=registry)
        self._claims = Counter("voicefleet_reserve_claims", "POST /start launches: a warm reserve bot "
                               "claimed, or a cold launch because none was idle.", ["provider", "outcome", "release"],
                               registry=registry)
        self._ready = Histogram("voicefleet_start_to_ready_seconds", "From POST /start to the bot's own "
                                "`ready` report on the channel, warm claim or cold launch.",
                                ["provider", "path", "release"], buckets=READY_BUCKETS, registry=registry)
        self._claim = Histogram("voicefleet_reserve_claim_seconds", "The dispatcher's share of a warm claim: "
                                "take an idle bot, assign it over the channel, re-tag its machine.", ["provider"],
                                buckets=CLAIM_BUCKETS, registry=registry)
        self._idle_seconds = Counter("voicefleet_reserve_idle_machine_seconds", "Machine-seconds spent "
                                     "by reserve bots before a claim: the reserve's cost.", ["provider", "state"],
                                     registry=registry)
        self._retired = Counter("voicefleet_reserve_retired", "Reserve bots stopped without a session, by "
                                "reason.", ["provider", "reason"], registry=registry)
        self._failed = Counter("voicefleet_reserve_failed_bots", "Reserve bots that exited or hung before "
                               "their hello, or whose bot file failed in its session.", ["provider"],
                               registry=registry)
        self._backoff = Gauge("voicefleet_reserve_backoff_seconds", "Seconds until the reserve launches again "
                              "after failed bots (0: not backing off).", ["provider"], registry=registry)
        self._in_a_row = Gauge("voicefleet_reserve_failed_bots_in_a_row", "Failed bots since the last one that "
                               "came up healthy.", ["provider"], registry=registry)
        self._cost = Gauge("voicefleet_reserve_tier_cost_dollars_per_month", "What each reserve tier held "
                           "here costs a month at its size now (hot: running idle bots; frozen: suspended or stopped "
                           "ones), at the provider's list prices (dispatcher/reserve/prices.py; "
                           "RESERVE_HOT_DOLLARS_PER_MONTH, FLY_FROZEN_DOLLARS_PER_MONTH).",
                           ["provider", "tier"], registry=registry)
        self._thaw = Histogram("voicefleet_reserve_thaw_seconds", "A frozen reserve bot's thaw: from the "
                               "provider's resume call until the bot is back on its channel.", ["provider"],
                               buckets=CLAIM_BUCKETS + (3, 5), registry=registry)
        self._target = Gauge("voicefleet_reserve_ready_target", "The planner's ready target (idle, warming and "
                             "frozen bots to hold), and of it the bots left to busier neighbouring regions "
                             "(covered: docs/regions.md, \"Capacity that follows the sun\"). Set where the reserve "
                             "is planned.", ["provider", "part"], registry=registry)
        self._prices = (0.0, 0.0)
        self._hot_price: float | None = None  # one running idle bot a month, where it is known
        self._failed.labels(provider)
        self._backoff.labels(provider).set(0)
        self._in_a_row.labels(provider).set(0)
        for state in ("idle", "warming"):
            self._bots.labels(provider, state).set(0)
            self._idle_seconds.labels(provider, state)

    def planned(self, *, ready_target: int, covered: int) -> None:
        self._target.labels(self.provider, "held").set(ready_target)
        self._target.labels(self.provider, "covered").set(covered)

    def size(self, *, idle: int, warming: int) -> None:
        self._bots.labels(self.provider, "idle").set(idle)
        self._bots.labels(self.provider, "warming").set(warming)

    def tier_prices(self, *, hot: float, frozen: float) -> None:
        """The provider has a frozen tier: its tiers' sizes and costs are shown from now on."""
        self._prices = (hot, frozen)
        for state in ("frozen", "freezing"):
            self._bots.labels(self.provider, state).set(0)
        self._idle_seconds.labels(self.provider, "frozen")
        self._thaw.labels(self.provider)
        self.tiers(hot=0, frozen=0, freezing=0)

    def tiers(self, *, hot: int, frozen: int, freezing: int) -> None:
        self._bots.labels(self.provider, "frozen").set(frozen)
        self._bots.labels(self.provider, "freezing").set(freezing)
        if self._hot_price is None:
            self._cost.labels(self.provider, "hot").set(hot * self._prices[0])
        self._cost.labels(self.provider, "frozen").set(frozen * self._prices[1])

    def hot_price(self, dollars_per_month: float) -> None:
        """One running idle bot's price a month (dispatcher/reserve/prices.py): the hot tier's cost
        is shown from now on, on every provider."""
        self._hot_price = dollars_per_month
        self.hot_tier(0)

    def hot_tier(self, hot: int) -> None:
        """The hot bots held here now, priced (nothing shown while the price is unknown)."""
        if self._hot_price is not None:
            self._cost.labels(self.provider, "hot").set(hot * self._hot_price)

    def thawed(self, seconds: float) -> None:
        self._thaw.labels(self.provider).observe(seconds)

    def frozen_time(self, seconds: float) -> None:
        self._idle_seconds.labels(self.provider, "frozen").inc(max(0.0, seconds))

    def claimed(self, *, warm: bool, release: str, seconds: float | None = None) -> None:
        self._claims.labels(self.provider, "warm_hit" if warm else "cold_miss", release).inc()
        if warm and seconds is not None:
            self._claim.labels(self.provider).observe(seconds)

    def ready_after(self, seconds: float, *, warm: bool, release: str) -> None:
        self._ready.labels(self.provider, "warm" if warm else "cold", release).observe(seconds)
        if self._activity is not None:
            self._activity.ready_after(seconds)

    def idle_time(self, *, idle_seconds: float, warming_seconds: float) -> None:
        self._idle_seconds.labels(self.provider, "idle").inc(max(0.0, idle_seconds))
        self._idle_seconds.labels(self.provider, "warming").inc(max(0.0, warming_seconds))

    def retired(self, reason: str) -> None:
        self._retired.labels(self.provider, reason).inc()

    def failed_bot(self) -> None:
        self._failed.labels(self.provider).inc()

    def backoff(self, seconds: float, *, in_a_row: int) -> None:
        self._backoff.labels(self.provider).set(seconds)
        self._in_a_row.labels(self.provider).set(in_a_row)
