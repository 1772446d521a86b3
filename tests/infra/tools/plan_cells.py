"""What the GCP cells' plan tests share (cloudRunCells, gceCells): a cell list and reading a plan."""

from __future__ import annotations

import json

import pytest

from stacks.tools.plan import main

THREE_CELLS = json.dumps([{"name": c, "project": f"voicefleet-cell-{c}"} for c in "abc"])
# A Cloud Run cell of another project names its bots' account (the stack refuses one that does not).
THREE_CLOUD_RUN_CELLS = json.dumps([{"name": c, "project": f"voicefleet-cell-{c}",
                                     "bot_service_account_id": f"10400000000000000011{n}"}
                                    for n, c in enumerate("abc")])


def value_after(text: str, name: str) -> str:
    """The `value:` line after `- name: <name>` in a rendered plan."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == f"- name: {name}")
    return lines[at + 1].strip().removeprefix("value: ")


def listed_projects(text: str, setting: str) -> list[str]:
    """The projects a cells setting (`CLOUDRUN_CELLS`, `GCE_CELLS`) lists in a rendered plan's dispatcher env."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == f"- name: {setting}")
    indent = len(lines[at]) - len(lines[at].lstrip())
    block = []
    for line in lines[at + 1:]:
        if len(line) - len(line.lstrip()) <= indent:  # the next setting
            break
        block.append(line.strip())
    return [line.removeprefix("- ").removeprefix("project: ") for line in block if "project:" in line]


def refused(stack: str, config: dict[str, str], capsys: pytest.CaptureFixture[str]) -> str:
    """What the plan says refusing `stack` with `config` (it exits 2)."""
    args = [arg for key, value in config.items() for arg in ("--config", f"{key}={value}")]
    assert main([stack, *args]) == 2
    return capsys.readouterr().err
