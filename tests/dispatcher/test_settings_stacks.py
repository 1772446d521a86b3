"""What the stacks set is a setting: every variable a stack's plan (the offline snapshots in
tests/infra/snapshots, which tests/infra keeps equal to the program) gives a container is one the
catalogue knows, so a stack cannot pass a misspelt setting that the dispatcher would ignore."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voicefleet_settings.names import by_name

SNAPSHOTS = Path(__file__).resolve().parents[2] / "tests" / "infra" / "snapshots"
VARIABLE_LINE = re.compile(r"^\s*- name: ([A-Z][A-Z0-9_]*[A-Z0-9])\s*$", re.MULTILINE)
# Set by a stack for its platform, not read as a setting: the Azure stack's digest of the secrets'
# versions, whose change alone starts a new Container Apps revision (stacks/azure/dispatcher.py).
NOT_SETTINGS = {"VOICEFLEET_SECRET_VERSIONS"}


def stack_variables(path: Path) -> set[str]:
    return set(VARIABLE_LINE.findall(path.read_text()))


@pytest.mark.parametrize("snapshot", sorted(p.name for p in SNAPSHOTS.glob("*.txt")))
def test_every_variable_a_stack_sets_is_a_setting(snapshot: str) -> None:
    names = stack_variables(SNAPSHOTS / snapshot)
    assert sorted(names - set(by_name()) - NOT_SETTINGS) == []


def test_the_snapshots_are_read() -> None:
    assert {"MAX_CONCURRENT_SESSIONS", "LOG_FORMAT"} <= stack_variables(SNAPSHOTS / "aws-prod.txt")
