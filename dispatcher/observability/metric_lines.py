"""Metric lines: the app's Prometheus registry, written to stdout as one JSON line per dimension set
every `METRIC_LINES_SECONDS`, so each cloud's log pipeline turns them into metrics without a
scraper.

    METRIC_LINES=emf    CloudWatch embedded metric format (the ECS `awslogs` driver ships stdout)
    METRIC_LINES=json   the same members without `_aws`, for Cloud Logging's log-based metrics
    METRIC_LINES=off    (default) nothing is computed or written

The registry stays the one source of truth: counters are written as their increase since the
last line, gauges as they are, histograms as the embedded metric format's histogram object of
bucket midpoints. Why midpoints, and why by hand rather than with `aws-embedded-metrics`:
docs/operations.md ("Where the metrics come from").
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from prometheus_client import CollectorRegistry

from dispatcher.observability.metric_catalogue import (
    DIMENSION,
    FAILURES_BY_REASON,
    METRICS,
    REASON,
    SAMPLE,
    STORE_UP,
    LineMetric,
)
from dispatcher.settings import SettingsError
from voicefleet_settings.model import ENUM
from voicefleet_settings.read import entry, setting_choice, setting_float, setting_text

log = logging.getLogger(__name__)

MODES = entry("METRIC_LINES", ENUM).choices
DEFAULT_NAMESPACE = "voicefleet"
MAX_VALUES = 100  # the specification's limit of values per metric in one line
REFRESH_TIMEOUT_SECONDS = 10.0
# json: a log-based distribution metric extracts one value per log entry, so each histogram is also
# written as sample lines (SAMPLE), one per observation (its bucket's midpoint), at most this many per
# histogram and interval; past it the buckets are scaled down alike, which keeps their percentiles.
MAX_SAMPLES = 200


def observations(histogram: Mapping[str, Any]) -> list[float]:
    """A histogram member's values, each repeated as often as it was observed (at most MAX_SAMPLES)."""
    total = sum(histogram["Counts"])
    scale = min(1.0, MAX_SAMPLES / total) if total else 0.0
    return [value for value, count in zip(histogram["Values"], histogram["Counts"], strict=True)
            for _ in range(max(1, round(count * scale)) if count else 0)]





@dataclass(frozen=True)
class MetricLineSettings:
    mode: str = "off"
    seconds: float = 60.0
    namespace: str = DEFAULT_NAMESPACE

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MetricLineSettings:
        mode = setting_choice(env, "METRIC_LINES")
        namespace = setting_text(env, "METRIC_NAMESPACE")
        # CloudWatch's rules (PutMetricData `Namespace`; the EMF schema forbids a leading ':'):
        # printable ASCII, 1-255 characters, and `AWS/` is reserved for AWS's own services.
        if (len(namespace) > 255 or not all(" " <= c <= "~" for c in namespace) or namespace.startswith(":")
                or namespace.upper().startswith("AWS/")):
            raise SettingsError(f"METRIC_NAMESPACE={namespace!r}: 1-255 printable ASCII characters, not starting "
                                "with ':' or 'AWS/'")
        return cls(mode=mode, seconds=setting_float(env, "METRIC_LINES_SECONDS"),
                   namespace=namespace)


class MetricLines:
    """Reads the registry, remembers what it last wrote, and writes the difference."""

    def __init__(self, registry: CollectorRegistry, provider: str, settings: MetricLineSettings, *,
                 refresh: Callable[[], Awaitable[None]] | None = None,
                 store_up: Callable[[], bool | None] = lambda: None, out: TextIO | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry, self.provider, self.settings = registry, provider, settings
        self._refresh, self._store_up = refresh, store_up
        self._out, self._clock = out, clock
        self._last: dict[tuple[str, ...], float] = {}  # cumulative values already written

    async def run(self) -> None:
        if self.settings.mode == "off":
            return
        try:
            while True:
                await asyncio.sleep(self.settings.seconds)
                try:
                    await self.write()
                except Exception:  # a metrics hiccup never stops the dispatcher
                    log.exception("metric lines: could not write")
        finally:
            # Stopped (a deploy, a scale-in): the counts since the last line are written, not lost;
            # without the provider call, which has no time left.
            self._emit(self._out or sys.stdout)

    async def write(self) -> None:
        if self._refresh is not None:
            try:
                # Gauges set only when read (active sessions: a provider call), bounded in time.
                await asyncio.wait_for(self._refresh(), timeout=REFRESH_TIMEOUT_SECONDS)
            except Exception as error:
                log.warning("metric lines: gauges not refreshed this interval: %s", error)
        self._emit(self._out or sys.stdout)

    def _emit(self, out: TextIO) -> None:
        for line in self.lines():
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
        out.flush()

    def lines(self) -> list[dict[str, Any]]:
        """This interval's documents (the registry read once); the deltas advance."""
        samples = list(self._samples())
        values: dict[str, Any] = {}
        for metric in METRICS:
            value = self._value(metric, samples)
            if value is not None:
                values[metric.name] = value
        if (up := self._store_up()) is not None:
            values[STORE_UP.name] = 1 if up else 0
        units = {m.name: m.unit for m in (*METRICS, STORE_UP)}
        lines = [self._document({DIMENSION: self.provider}, values, units)]
        for reason, count in self._failures_by_reason(samples).items():
            lines.append(self._document({DIMENSION: self.provider, REASON: reason},
                                        {FAILURES_BY_REASON.name: count}, units))
        if self.settings.mode == "json":
            lines += [{"metricNamespace": self.settings.namespace, DIMENSION: self.provider, SAMPLE: name,
                       "value": value}
                      for name, histogram in values.items() if isinstance(histogram, dict)
                      for value in observations(histogram)]
        return lines

    def _document(self, dimensions: dict[str, str], values: dict[str, Any],
                  units: Mapping[str, str]) -> dict[str, Any]:
        document: dict[str, Any] = {"metricNamespace": self.settings.namespace, **dimensions, **values}
        if self.settings.mode == "emf":
            document["_aws"] = {
                "Timestamp": int(self._clock() * 1000),
                "CloudWatchMetrics": [{
                    "Namespace": self.settings.namespace,
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": name, "Unit": units[name]} for name in values],
                }],
            }
        return document

    def _samples(self) -> Iterator[tuple[str, str, dict[str, str], float]]:
        for family in self.registry.collect():
            for sample in family.samples:
                yield family.name, sample.name, dict(sample.labels), sample.value

    def _value(self, metric: LineMetric, samples: list[tuple[str, str, dict[str, str], float]]) -> Any:
        chosen = [(name, labels, value) for family, name, labels, value in samples
                  if family == metric.family and all(labels.get(k) == v for k, v in metric.match.items())]
        if not chosen:
            return None  # the family is not registered in this process (no reserve, no phone)
        if metric.kind == "gauge":
            return sum(v for _, _, v in chosen)
        if metric.kind == "counter":
            total = sum(v for name, _, v in chosen if name.endswith("_total"))
            return self._delta((metric.name,), total)
        return self._histogram(metric, chosen)

    def _delta(self, key: tuple[str, ...], cumulative: float) -> float:
        # A counter that went down belongs to a new process: all of it is new.
        previous = self._last.get(key, 0.0)
        self._last[key] = cumulative
        return cumulative - previous if cumulative >= previous else cumulative

    def _histogram(self, metric: LineMetric, chosen: list[tuple[str, dict[str, str], float]]) -> dict[str, Any] | None:
        cumulative: dict[float, float] = {}
        total_sum = 0.0
        for name, labels, value in chosen:
            if name.endswith("_bucket"):
                bound = float(labels["le"])
                cumulative[bound] = cumulative.get(bound, 0.0) + value
            elif name.endswith("_sum"):
                total_sum += value
        bounds = sorted(cumulative)
        added = [self._delta((metric.name, repr(b)), cumulative[b]) for b in bounds]
        sum_added = self._delta((metric.name, "sum"), total_sum)
        values, counts, lower, below = [], [], 0.0, 0.0
        for bound, up_to in zip(bounds, added, strict=True):
            in_bucket = up_to - below
            below = up_to
            if in_bucket > 0:
                values.append(lower if math.isinf(bound) else (lower + bound) / 2)
                counts.append(int(round(in_bucket)))
            if not math.isinf(bound):
                lower = bound
        if not counts:
            return None  # nothing observed: the member is left out (a metric needs a value)
        return {"Values": values[:MAX_VALUES], "Counts": counts[:MAX_VALUES], "Max": max(values),
                "Min": min(values), "Count": sum(counts), "Sum": sum_added}

    def _failures_by_reason(self, samples: list[tuple[str, str, dict[str, str], float]]) -> dict[str, float]:
        totals: dict[str, float] = {}
        for family, name, labels, value in samples:
            if family == FAILURES_BY_REASON.family and name.endswith("_total"):
                totals[labels["reason"]] = totals.get(labels["reason"], 0.0) + value
        deltas = {reason: self._delta((FAILURES_BY_REASON.name, reason), total) for reason, total in totals.items()}
        return {reason: delta for reason, delta in sorted(deltas.items()) if delta > 0}
