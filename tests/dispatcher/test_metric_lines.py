"""Metric lines: the registry's deltas as CloudWatch embedded-metric-format (or plain JSON) lines."""

from __future__ import annotations

import asyncio
import io
import json
import math
import random

import jsonschema
import pytest

from dispatcher.observability.metric_catalogue import METRICS, READY_BUCKETS, metric_names
from dispatcher.observability.metric_lines import MAX_SAMPLES, MetricLines, MetricLineSettings
from dispatcher.observability.metrics import Metrics
from dispatcher.phone.metrics import PhoneMetrics
from dispatcher.phone.sip_edge_gauges import SipEdgeGauges
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.settings import SettingsError

# The document structure of the specification, as a JSON schema: a root with `_aws` holding
# `Timestamp` and `CloudWatchMetrics` (MetricDirective objects: Namespace, Dimensions as arrays of
# at most 30 dimension names, Metrics with Name and optional Unit/StorageResolution); every
# dimension and metric a directive names is a root member, a metric's member a number, an array of
# at most 100 numbers, or a histogram object.
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
UNITS = ["Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
         "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
         "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
         "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"]
EMF_SCHEMA = {
    "type": "object",
    "required": ["_aws"],
    "properties": {"_aws": {
        "type": "object",
        "required": ["Timestamp", "CloudWatchMetrics"],
        "additionalProperties": False,
        "properties": {
            "Timestamp": {"type": "integer", "minimum": 0},
            "CloudWatchMetrics": {"type": "array", "items": {
                "type": "object",
                "required": ["Namespace", "Dimensions", "Metrics"],
                "additionalProperties": False,
                "properties": {
                    "Namespace": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^[^:].*$"},
                    "Dimensions": {"type": "array", "items": {
                        "type": "array", "maxItems": 30,
                        "items": {"type": "string", "minLength": 1, "maxLength": 250}}},
                    "Metrics": {"type": "array", "maxItems": 100, "items": {
                        "type": "object", "required": ["Name"], "additionalProperties": False,
                        "properties": {"Name": {"type": "string", "minLength": 1, "maxLength": 1024},
                                       "Unit": {"enum": UNITS},
                                       "StorageResolution": {"enum": [1, 60]}}}},
                }}},
        }}},
}
VALUE = {"oneOf": [
    {"type": "number"},
    {"type": "array", "maxItems": 100, "items": {"type": "number"}},
    {"type": "object", "required": ["Values", "Counts", "Max", "Min", "Count", "Sum"],
     "properties": {"Values": {"type": "array", "maxItems": 100, "items": {"type": "number"}},
                    "Counts": {"type": "array", "maxItems": 100, "items": {"type": "number", "minimum": 0}}}},
]}


def check_emf(line: dict) -> None:
    jsonschema.validate(line, EMF_SCHEMA)
    for directive in line["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for dimension in dimension_set:
                assert isinstance(line[dimension], str), dimension  # target members, strings
        for metric in directive["Metrics"]:
            jsonschema.validate(line[metric["Name"]], VALUE)


class App:
    """The registry as the dispatcher builds it: its own metrics, the reserve's, the phone's and the SIP edges'."""

    def __init__(self, mode: str = "emf") -> None:
        self.metrics = Metrics("ecs")
        self.reserve = ReserveMetrics(self.metrics.registry, "ecs")
        self.phone = PhoneMetrics(self.metrics.registry, "ecs")
        self.sip_edges = SipEdgeGauges(self.metrics.registry)
        self.out = io.StringIO()
        self.store = True
        self.lines = MetricLines(self.metrics.registry, "ecs",
                                 MetricLineSettings(mode=mode, seconds=1, namespace="voicefleet/aws-prod"),
                                 store_up=lambda: self.store, out=self.out, clock=lambda: 1_700_000_000.5)

    async def written(self) -> list[dict]:
        start = self.out.tell()
        await self.lines.write()
        return [json.loads(line) for line in self.out.getvalue()[start:].splitlines()]


async def test_counter_deltas_gauges_and_failures_by_reason_across_two_intervals() -> None:
    app = App()
    for _ in range(3):
        app.metrics.started(created=True, release="stable")
    app.metrics.started(created=False, release="stable")  # an Idempotency-Key replay is not a start
    app.reserve.claimed(warm=True, release="stable", seconds=0.01)
    app.reserve.claimed(warm=True, release="stable", seconds=0.01)
    app.reserve.claimed(warm=False, release="stable")
    app.metrics.failed("capacity", "stable")
    app.reserve.size(idle=2, warming=1)
    app.reserve.idle_time(idle_seconds=30, warming_seconds=10)

    first = await app.written()
    main = first[0]
    assert (main["Starts"], main["WarmStarts"], main["ColdStarts"], main["StartFailures"]) == (3, 2, 1, 1)
    assert (main["ReserveIdleBots"], main["ReserveWarmingBots"], main["StoreUp"]) == (2, 1, 1)
    assert main["ReserveIdleMachineSeconds"] == 40
    assert main["Provider"] == "ecs" and main["_aws"]["Timestamp"] == 1_700_000_000_500
    assert [(line["Reason"], line["StartFailures"]) for line in first[1:]] == [("capacity", 1)]

    app.metrics.started(created=True, release="stable")
    app.metrics.failed("provider_error", "stable")
    app.metrics.failed("provider_error", "stable")
    app.reserve.size(idle=0, warming=0)
    app.store = False
    second = await app.written()
    main = second[0]
    assert (main["Starts"], main["WarmStarts"], main["StartFailures"]) == (1, 0, 2)  # since the last line
    assert (main["ReserveIdleBots"], main["StoreUp"]) == (0, 0)
    assert [(line["Reason"], line["StartFailures"]) for line in second[1:]] == [("provider_error", 2)]
    for line in first + second:
        check_emf(line)
        names = [m["Name"] for d in line["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
        assert set(names) <= set(metric_names()), names
        assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "voicefleet/aws-prod"


async def test_ended_sessions_cost_is_written_as_its_increase_by_part_summed_over_releases() -> None:
    app = App()
    app.metrics.session_cost("stable", dollars=0.0125, session_seconds=300, idle_seconds=20)
    app.metrics.session_cost("canary", dollars=0.005, session_seconds=120, idle_seconds=0)
    app.metrics.session_cost("stable", dollars=None, session_seconds=60, idle_seconds=5)  # unpriced: seconds only
    (main,) = await app.written()
    assert main["SessionCostDollars"] == pytest.approx(0.0175)
    assert (main["SessionMachineSeconds"], main["SessionIdleMachineSeconds"]) == (480, 25)
    units = {m["Name"]: m.get("Unit") for m in main["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert (units["SessionCostDollars"], units["SessionMachineSeconds"]) == ("None", "Seconds")
    check_emf(main)

    app.metrics.session_cost("stable", dollars=0.001, session_seconds=10, idle_seconds=0)
    (main,) = await app.written()
    assert main["SessionCostDollars"] == pytest.approx(0.001)  # since the last line
    assert (main["SessionMachineSeconds"], main["SessionIdleMachineSeconds"]) == (10, 0)


async def test_histogram_p95_from_values_and_counts_lands_in_the_registry_bucket() -> None:
    app = App()
    rng = random.Random(7)
    observed = sorted(rng.lognormvariate(0.5, 0.8) for _ in range(500))
    for seconds in observed:
        app.reserve.ready_after(seconds, warm=rng.random() < 0.7, release="stable")
    ready = (await app.written())[0]["TimeToReady"]
    assert ready["Count"] == 500 and ready["Sum"] == pytest.approx(sum(observed))

    # CloudWatch's percentile over Values weighted by Counts: the value at rank ceil(0.95 n).
    rank, seen, p95_from_line = math.ceil(0.95 * ready["Count"]), 0, None
    for value, count in sorted(zip(ready["Values"], ready["Counts"], strict=True)):
        seen += count
        if seen >= rank:
            p95_from_line = value
            break
    true_p95 = observed[rank - 1]
    bounds = (*READY_BUCKETS, math.inf)
    bucket = next(i for i, b in enumerate(bounds) if true_p95 <= b)
    lower = 0.0 if bucket == 0 else bounds[bucket - 1]
    assert p95_from_line is not None and lower <= p95_from_line <= bounds[bucket]

    # The next interval carries only what was observed since.
    app.reserve.ready_after(0.3, warm=True, release="stable")
    ready = (await app.written())[0]["TimeToReady"]
    assert (ready["Values"], ready["Counts"], ready["Count"]) == ([0.375], [1], 1)  # the (0.25, 0.5] midpoint


async def test_json_lines_are_the_same_members_without_aws() -> None:
    app = App(mode="json")
    app.metrics.started(created=True, release="stable")
    app.phone._first_audio.labels("ecs", "direct", "stable").observe(0.7)
    line = (await app.written())[0]
    assert "_aws" not in line
    assert line["Starts"] == 1 and line["PhoneFirstAudio"]["Count"] == 1
    assert line["metricNamespace"] == "voicefleet/aws-prod"


async def test_off_computes_and_writes_nothing() -> None:
    app = App(mode="off")
    app.metrics.started(created=True, release="stable")
    await asyncio.wait_for(app.lines.run(), timeout=1)  # returns at once
    assert app.out.getvalue() == ""


async def test_the_loop_writes_every_interval_and_survives_a_failed_refresh() -> None:
    metrics = Metrics("local")
    out = io.StringIO()

    async def refresh() -> None:
        raise RuntimeError("provider down")

    lines = MetricLines(metrics.registry, "local", MetricLineSettings(mode="emf", seconds=1), refresh=refresh, out=out)
    task = asyncio.create_task(lines.run())
    try:
        async with asyncio.timeout(10):
            while out.getvalue().count("\n") < 2:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
    check_emf(json.loads(out.getvalue().splitlines()[0]))


def test_every_written_metric_comes_from_a_registered_family() -> None:
    app = App()
    families = {family.name for family in app.metrics.registry.collect()}
    assert {m.family for m in METRICS} <= families


@pytest.mark.parametrize("env", [{"METRIC_LINES": "prometheus"}, {"METRIC_LINES_SECONDS": "0"},
                                 {"METRIC_NAMESPACE": ":aws"}, {"METRIC_NAMESPACE": "AWS/ECS"},
                                 {"METRIC_NAMESPACE": "voicefleet/é"}])
def test_bad_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        MetricLineSettings.from_env(env)


def test_a_namespace_may_use_every_printable_ascii_character_up_to_255_of_them() -> None:
    """CloudWatch's bounds, both ends admitted: space and `~`, and exactly 255 characters."""
    printable = "".join(chr(c) for c in range(ord(" "), ord("~") + 1))
    assert MetricLineSettings.from_env({"METRIC_NAMESPACE": f"vf{printable}"}).namespace == f"vf{printable}"
    longest = "v" * 255
    assert MetricLineSettings.from_env({"METRIC_NAMESPACE": longest}).namespace == longest
    with pytest.raises(SettingsError):
        MetricLineSettings.from_env({"METRIC_NAMESPACE": longest + "v"})


async def test_json_writes_each_observation_as_a_sample_line_bounded_per_interval() -> None:
    app = App(mode="json")
    for _ in range(3):
        app.reserve.ready_after(0.3, warm=True, release="stable")
    app.reserve.ready_after(4.0, warm=False, release="stable")
    samples = [line for line in await app.written() if line.get("histogram") == "TimeToReady"]
    assert sorted(line["value"] for line in samples) == [0.375, 0.375, 0.375, 4.0]  # (3, 5] midpoint: 4

    for _ in range(900):
        app.reserve.ready_after(0.3, warm=True, release="stable")
    for _ in range(100):
        app.reserve.ready_after(4.0, warm=False, release="stable")
    values = [line["value"] for line in await app.written() if line.get("histogram") == "TimeToReady"]
    assert len(values) == MAX_SAMPLES and values.count(4.0) == MAX_SAMPLES // 10  # the same shape, scaled


async def test_stopping_writes_the_counts_since_the_last_line() -> None:
    app = App()
    app.lines.settings = MetricLineSettings(mode="emf", seconds=3600, namespace="voicefleet/aws-prod")
    task = asyncio.create_task(app.lines.run())
    await asyncio.sleep(0)  # the loop is waiting out its interval
    app.metrics.started(created=True, release="stable")
    app.metrics.started(created=True, release="stable")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (main,) = [json.loads(line) for line in app.out.getvalue().splitlines()]
    assert main["Starts"] == 2
