"""Prometheus metrics, one registry per app so tests and replicas never share counters.

Every session metric carries its session's `release` (docs/releases.md): its values are the
configured releases' names (a stack keeps its last `releasesKept`), so the label adds a handful of
series per metric, never one per session.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from dispatcher.observability.activity import Activity
from dispatcher.observability.metric_catalogue import LAUNCH_BUCKETS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self, provider: str) -> None:
        self.registry = CollectorRegistry()
        self.provider = provider
        self.activity = Activity()  # the last hour's starts and refusals, for GET /status
        # Each start's series, looked up once: `labels()` checks its values and takes a lock per call.
        self._series: dict[tuple[int, str, str], Any] = {}
        self._active_releases: set[str] = set()  # each release shown once stays shown (at 0 when idle)
        self._starts = Counter(
            "voicefleet_session_starts",
            "Sessions started, by outcome (created a machine, or replayed an Idempotency-Key).",
            ["provider", "outcome", "release"],
            registry=self.registry,
        )
        # An eval's sessions (`voicefleet eval`) apart, so the starts and sessions above are callers' load.
        self._eval_starts = Counter(
            "voicefleet_eval_session_starts",
            "Eval sessions started (`\"eval\": true`), by outcome; voicefleet_session_starts counts callers' only.",
            ["provider", "outcome", "release"],
            registry=self.registry,
        )
        self._failures = Counter(
            "voicefleet_session_start_failures",
            "POST /start calls that did not start a session, by reason.",
            ["provider", "reason", "release"],
            registry=self.registry,
        )
        self._launch = Histogram(
            "voicefleet_launch_seconds",
            "Time to have the provider accept a launch (and, with ?wait=started, to start).",
            ["provider", "waited", "release"],
            buckets=LAUNCH_BUCKETS,
            registry=self.registry,
        )
        self._reaped = Counter(
            "voicefleet_reaped",
            "What the reaper cleaned up: overdue machines stopped, rooms of ended sessions ended.",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self._active = Gauge(
            "voicefleet_active_sessions",
            "Callers' sessions whose machine is starting, started or joined (evals' apart).",
            ["provider", "release"],
            registry=self.registry,
        )
        self._eval_active = Gauge(
            "voicefleet_eval_active_sessions",
            "Eval sessions whose machine is starting, started or joined.",
            ["provider", "release"],
            registry=self.registry,
        )

        self._cost = Counter(
            "voicefleet_session_cost_dollars",
            "What ended sessions' machines cost, in USD at the price table's price (docs/operations.md, "
            "\"What a call cost\"), by release: their own time plus a warm-claimed bot's idle time before its claim.",
            ["provider", "release"],
            registry=self.registry,
        )
        self._machine_seconds = Counter(
            "voicefleet_session_machine_seconds",
            "Ended sessions' machine-seconds, by release and part: `session` (its launch or claim to its end), "
            "`idle` (a warm-claimed bot's idle time before its claim).",
            ["provider", "release", "part"],
            registry=self.registry,
        )

    def session_cost(self, release: str, *, dollars: float | None, session_seconds: float,
                     idle_seconds: float) -> None:
        """An ended session's cost (`dollars` None: its provider and size are not priced)."""
        if dollars is not None:
            self._cost.labels(self.provider, release).inc(dollars)
        self._machine_seconds.labels(self.provider, release, "session").inc(session_seconds)
        self._machine_seconds.labels(self.provider, release, "idle").inc(idle_seconds)

    def started(self, *, created: bool, release: str, evaluation: bool = False) -> None:
        """A start answered; an eval's counts apart and stays out of GET /status's starts."""
        if evaluation:
            self._of(self._eval_starts, "created" if created else "replayed", release).inc()
            return
        self._of(self._starts, "created" if created else "replayed", release).inc()
        if created:
            self.activity.started()

    def failed(self, reason: str, release: str) -> None:
        self._failures.labels(self.provider, reason, release).inc()
        self.activity.refused(reason)

    def launch_took(self, seconds: float, *, waited: bool, release: str) -> None:
        self._of(self._launch, str(waited).lower(), release).observe(seconds)

    def reaped(self, outcome: str) -> None:
        self._reaped.labels(self.provider, outcome).inc()

    def set_active(self, by_release: Mapping[str, int], evals: Mapping[str, int] | None = None) -> None:
        """The active sessions of each release, callers' and evals' (a release seen before and absent
        now has none)."""
        evals = evals or {}
        self._active_releases.update(by_release)
        self._active_releases.update(evals)
        for release in self._active_releases:
            self._active.labels(self.provider, release).set(by_release.get(release, 0))
            self._eval_active.labels(self.provider, release).set(evals.get(release, 0))

    def _of(self, metric: Counter | Histogram, label: str, release: str) -> Any:
        key = (id(metric), label, release)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = metric.labels(self.provider, label, release)
        return series

    def render(self, active_by_release: Mapping[str, int], evals: Mapping[str, int] | None = None) -> bytes:
        self.set_active(active_by_release, evals)
        return generate_latest(self.registry)
