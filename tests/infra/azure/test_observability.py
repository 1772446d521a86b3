"""Azure: the workbook charts what the dispatcher writes on its metric lines, the sessions' cost included."""

from __future__ import annotations

import json
import re

from dispatcher.observability.metric_catalogue import metric_names
from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import StackRunner

WORKBOOK = "azure-native:applicationinsights:Workbook"


def charts(run: Run) -> dict[str, str]:
    data = json.loads(unwrap(run.one(WORKBOOK).inputs)["serializedData"])
    return {item["name"]: item["content"]["query"] for item in data["items"]}


def test_the_workbook_reads_only_members_the_dispatcher_writes_and_charts_the_sessions_cost(
        stack: StackRunner) -> None:
    queries = charts(stack("azure"))
    read = {name for query in queries.values() for name in re.findall(r"\bm\.(\w+)", query)}
    assert read - {"metricNamespace", "Reason", "histogram", "value"} <= set(metric_names())
    (cost,) = (query for title, query in queries.items() if "cost" in title)
    assert set(re.findall(r"\bm\.(\w+)", cost)) >= {"SessionCostDollars", "SessionMachineSeconds",
                                                    "SessionIdleMachineSeconds"}
