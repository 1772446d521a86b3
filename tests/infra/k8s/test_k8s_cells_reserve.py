"""A k8s stack with `k8sCells` runs the warm reserve over its clusters as over one (stacks/config/reserve.py):
the reserve it writes, from its size or its keys, is the dispatcher's over the cells, which starts with it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dispatcher.factory import configuration_problems
from stacks.tools.mocks import Run
from tests.infra.conftest import StackRunner
from tests.infra.k8s.conftest import container_env

CELLS: list[dict[str, Any]] = [
    {"name": "a", "api_url": "https://10.0.0.1", "token_file": "/var/run/cells/a/token",
     "ca_file": "/var/run/cells/a/ca.crt", "secret": "voicefleet-cell-a", "max_pods": 200},
]


def cells_run(k8s_stack: StackRunner, **more: Any) -> Run:
    return k8s_stack(k8sCells=json.dumps(CELLS), **more)


def start_problems(run: Run) -> list[str]:
    """What the dispatcher's own start check says of the reserve and cells the stack wrote (a variable read from
    a Secret, REDIS_URL among them, as set)."""
    env = {name: entry.get("value", "redis://from-a-secret:6379") for name, entry in container_env(run).items()}
    return [problem for problem in configuration_problems(env) if "K8S_CELLS" in problem or "RESERVE" in problem]


@pytest.mark.parametrize(("more", "written"), [
    ({"size": "medium"}, ("2", "20", None)),
    ({"reserveMinIdle": "2", "reserveMaxIdle": "5"}, ("2", "5", None)),
    ({"reserveSchedule": "09:00-17:00=3"}, (None, None, "09:00-17:00=3")),
])
def test_the_stack_writes_the_reserve_as_set_over_cells_and_the_dispatcher_starts_with_it(
        k8s_stack: StackRunner, more: dict[str, str], written: tuple[str | None, ...]) -> None:
    run = cells_run(k8s_stack, **more)
    env = container_env(run)
    for name, value in zip(("RESERVE_MIN_IDLE", "RESERVE_MAX_IDLE", "RESERVE_SCHEDULE"), written, strict=True):
        if value is not None:
            assert env[name]["value"] == value, (name, env.get(name))
    assert "K8S_CELLS" in env
    assert start_problems(run) == []


def test_with_or_without_cells_the_reserve_is_written_alike(k8s_stack: StackRunner) -> None:
    alone, over_cells = container_env(k8s_stack(size="medium")), container_env(cells_run(k8s_stack, size="medium"))
    for name in ("RESERVE_MIN_IDLE", "RESERVE_MAX_IDLE"):
        assert alone[name]["value"] == over_cells[name]["value"]
