"""The warm reserve's Prometheus metrics, on the app's own registry (dispatcher/metrics.py).

    voicefleet_reserve_bots{state="idle"|"warming"}              gauge: the reserve now
    voicefleet_reserve_claims_total{outcome="warm_hit"|"cold_miss"}
    voicefleet_start_to_ready_seconds{path="warm"|"cold"}        POST /start → the bot's own `ready` report
    voicefleet_reserve_claim_seconds                             the dispatcher's share of a warm claim
    voicefleet_reserve_idle_machine_seconds_total{state}         the cost of the reserve, in machine-seconds
    voicefleet_reserve_retired_total{reason}                     idle bots stopped, and why
    voicefleet_reserve_failed_bots_total                         bots that never came up, or whose bot file failed
    voicefleet_reserve_backoff_seconds                           gauge: until the next launch after failed bots
    voicefleet_reserve_failed_bots_in_a_row                      gauge: failed bots since the last healthy one
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

READY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 90, 120)
CLAIM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2)


class ReserveMetrics:
    def __init__(self, registry: CollectorRegistry, provider: str) -> None:
        self.provider = provider
        self._bots = Gauge("voicefleet_reserve_bots", "Reserve bots by state (idle: on the channel, "
                           "waiting; warming: launched, not on the channel yet).", ["provider", "state"],
                           registry=registry)
        self._claims = Counter("voicefleet_reserve_claims", "POST /start launches: a warm reserve bot "
                               "claimed, or a cold launch because none was idle.", ["provider", "outcome"],
                               registry=registry)
        self._ready = Histogram("voicefleet_start_to_ready_seconds", "From POST /start to the bot's own "
                                "`ready` report on the channel, warm claim or cold launch.", ["provider", "path"],
                                buckets=READY_BUCKETS, registry=registry)
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
        self._failed.labels(provider)
        self._backoff.labels(provider).set(0)
        self._in_a_row.labels(provider).set(0)
        for state in ("idle", "warming"):
            self._bots.labels(provider, state).set(0)
            self._idle_seconds.labels(provider, state)
        for outcome in ("warm_hit", "cold_miss"):
            self._claims.labels(provider, outcome)

    def size(self, *, idle: int, warming: int) -> None:
        self._bots.labels(self.provider, "idle").set(idle)
        self._bots.labels(self.provider, "warming").set(warming)

    def claimed(self, *, warm: bool, seconds: float | None = None) -> None:
        self._claims.labels(self.provider, "warm_hit" if warm else "cold_miss").inc()
        if warm and seconds is not None:
            self._claim.labels(self.provider).observe(seconds)

    def ready_after(self, seconds: float, *, warm: bool) -> None:
        self._ready.labels(self.provider, "warm" if warm else "cold").observe(seconds)

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
