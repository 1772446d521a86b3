"""A GCP stack with `gceCells` across `up`s (stacks/gcp/stack.py, releases.py): the default template the dispatcher
is told to insert from must be one every cell's project already holds once a new build adds a release.

The stack makes a release's template in its own project only; each cell's copy is the operator's, made after the
`up` that names it (stacks/gcp/cell_templates.py). A start whose template a cell lacks: a release's is told apart
(tests/dispatcher/machines/test_gce_cells.py, the release goes to a cell that has it, none drained), the default's
drains the cell, so the default must be a template every cell has held since its own `up`."""

from __future__ import annotations

import json

from tests.infra.conftest import StackRunner
from tests.infra.gcp.test_releases import OLD_BOT, build, releases, remembered, templates
from tests.infra.test_turn_server import dispatcher_env

CELLS = json.dumps([{"name": c, "project": f"voicefleet-cell-{c}"} for c in "ab"])


def test_with_cells_a_new_build_leaves_the_default_template_the_oldest_releases(stack: StackRunner) -> None:
    old = build({"bot": OLD_BOT})
    run = stack("gcp", previous=remembered(old), gceCells=CELLS)
    listed = [release["name"] for release in releases(run)["releases"]]
    assert listed[0] == old["name"] and len(listed) == 2 and len(templates(run)) == 2
    oldest = releases(run)["releases"][0]["images"]["*"]
    assert oldest.endswith("/" + templates(run)[old["name"]]["name"])
    assert dispatcher_env(run, "gcp")["GCE_INSTANCE_TEMPLATE"] == oldest


def test_without_cells_the_default_template_is_the_new_builds(stack: StackRunner) -> None:
    run = stack("gcp", previous=remembered(build({"bot": OLD_BOT})))
    assert dispatcher_env(run, "gcp")["GCE_INSTANCE_TEMPLATE"] == releases(run)["releases"][-1]["images"]["*"]
