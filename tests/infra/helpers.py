"""Small readers over recorded registrations (inputs use the engine's camelCase names)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stacks.tools import mocks
from stacks.tools.mocks import RecordingMocks, Registration, Run, run_function, unwrap

ROOT = Path(__file__).resolve().parents[2]  # the repository


def with_state(monkeypatch: pytest.MonkeyPatch, typ: str, **state: Any) -> None:
    """The mocked provider answers `typ` with `state` over its inputs: what the cloud's state holds beyond them
    (a run with it must not be cached: call run_program, not the `stack` fixture)."""
    answer = RecordingMocks.new_resource

    def new_resource(self: RecordingMocks, args: Any) -> tuple[str, dict[str, Any]]:
        rid, found = answer(self, args)
        return rid, ({**found, **state} if args.typ == typ else found)

    monkeypatch.setattr(RecordingMocks, "new_resource", new_resource)


def watched_monitors(monkeypatch: pytest.MonkeyPatch) -> list[mocks.RecordingMonitor]:
    """Every mock monitor the runs from now on make, to read what a run registered before it failed."""
    monitors: list[mocks.RecordingMonitor] = []

    class Watched(mocks.RecordingMonitor):
        def __init__(self, recording: mocks.RecordingMocks) -> None:
            super().__init__(recording)
            monitors.append(self)

    monkeypatch.setattr(mocks, "RecordingMonitor", Watched)
    return monitors


def mock_id(reg: Registration) -> str:
    return f"{reg.name}-id"  # stacks/tools/mocks.py: ids are derived from logical names


def policy_statements(run: Run) -> list[dict[str, Any]]:
    """Every statement of every IAM policy document the program writes (inline and trust)."""
    statements: list[dict[str, Any]] = []
    for reg in run.registrations:
        for key in ("policy", "assumeRolePolicy"):
            if reg.type.startswith("aws:iam/") and key in reg.inputs:
                document = json.loads(unwrap(reg.inputs[key]))
                found = document["Statement"]
                statements.extend(found if isinstance(found, list) else [found])
    return statements


def actions(statement: dict[str, Any]) -> list[str]:
    found = statement.get("Action", [])
    return [found] if isinstance(found, str) else list(found)


def container(run: Run, family_suffix: str) -> dict[str, Any]:
    task = next(r for r in run.of_type("aws:ecs/taskDefinition:TaskDefinition")
                if r.inputs["family"].endswith(family_suffix))
    (definition,) = json.loads(unwrap(task.inputs["containerDefinitions"]))
    return definition


def run_component(build: Callable[[], object]) -> list[Registration]:
    """What one component registers when `build` creates it on its own, outside a stack."""
    def program() -> None:
        build()

    return run_function(program, RecordingMocks(region="eu-west-1")).registrations


def of_type(registrations: list[Registration], typ: str) -> list[Registration]:
    return [r for r in registrations if r.type == typ]


def component_outputs(run: Run, cloud: str) -> dict[str, Any]:
    """The stack component's registered outputs: infra/__main__.py exports exactly these."""
    component = f"{cloud.capitalize()}Stack::voicefleet-{cloud}-test"
    return next(o for urn, o in run.completed.items() if urn.endswith(component))


def changed_names(before: Run, after: Run) -> list[tuple[str, str]]:
    """(type, logical name) of the resources whose inputs differ between two runs of the same stack
    (what a second `up` would update); both runs must register the same resources."""
    old = {r.urn: unwrap(r.inputs) for r in before.registrations}
    new = {r.urn: r for r in after.registrations}
    assert old.keys() == new.keys(), sorted(old.keys() ^ new.keys())
    return sorted((reg.type, reg.name) for urn, reg in new.items() if unwrap(reg.inputs) != old[urn])


def holding(run: Run, text: str) -> list[Registration]:
    """Every registration with `text` anywhere in its inputs (a secret's value, a resource's id)."""
    return [r for r in run.registrations if text in json.dumps(unwrap(r.inputs), default=str)]
