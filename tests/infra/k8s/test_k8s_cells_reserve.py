"""A k8s stack with `k8sCells` runs no warm reserve (stacks/config/reserve.py): the dispatcher refuses one set
with K8S_CELLS, so the stack writes the reserve off (RESERVE_MIN_IDLE and RESERVE_MAX_IDLE 0), whatever its
size derives, and a reserve key set to ask for warm bots is refused at preview, naming the way out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dispatcher.factory import configuration_problems
from stacks.config.reader import SettingsError
from stacks.tools.mocks import Run
from tests.infra.conftest import StackRunner
from tests.infra.k8s.conftest import container_env

CELLS: list[dict[str, Any]] = [
    {"name": "a", "api_url": "https://10.0.0.1", "token_file": "/var/run/cells/a/token",
     "ca_file": "/var/run/cells/a/ca.crt", "secret": "voicefleet-cell-a", "max_pods": 200},
]


def cells_run(k8s_stack: StackRunner, **more: Any) -> Run:
    return k8s_stack(k8sCells=json.dumps(CELLS), **more)


def reserve_refusals(run: Run) -> list[str]:
    """What the dispatcher's own start check says of the reserve the stack wrote beside K8S_CELLS."""
    env = {name: entry["value"] for name, entry in container_env(run).items() if "value" in entry}
    return [problem for problem in configuration_problems(env) if "K8S_CELLS with" in problem]


@pytest.mark.parametrize("more", [{}, {"size": "medium"}, {"reserveMinIdle": "0", "reserveMaxIdle": "0"},
                                  {"reserveBuffer": "0.5"}])
def test_the_stack_writes_the_reserve_off_over_cells_and_the_dispatcher_starts_with_it(
        k8s_stack: StackRunner, more: dict[str, str]) -> None:
    run = cells_run(k8s_stack, **more)
    env = container_env(run)
    assert (env["RESERVE_MIN_IDLE"]["value"], env["RESERVE_MAX_IDLE"]["value"]) == ("0", "0")
    assert "RESERVE_SCHEDULE" not in env
    assert reserve_refusals(run) == []


def test_without_cells_the_reserve_is_written_as_set(k8s_stack: StackRunner) -> None:
    env = container_env(k8s_stack(size="medium"))
    assert (env["RESERVE_MIN_IDLE"]["value"], env["RESERVE_MAX_IDLE"]["value"]) == ("2", "20")


@pytest.mark.parametrize(("key", "value"), [("reserveMinIdle", "2"), ("reserveMaxIdle", "5"),
                                            ("reserveSchedule", "09:00-17:00=3")])
def test_a_reserve_key_asking_for_warm_bots_is_refused_at_preview_over_cells(
        k8s_stack: StackRunner, key: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"voicefleet:{key} asks for warm bots, but with voicefleet:k8sCells "
                                            "every session starts cold") as refused:
        cells_run(k8s_stack, **{key: value})
    assert f"pulumi config rm {key}" in str(refused.value) and "pulumi config rm k8sCells" in str(refused.value)
