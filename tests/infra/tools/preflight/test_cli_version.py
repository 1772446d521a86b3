"""N10: Pulumi.yaml keeps out the CLIs whose uv toolchain syncs the repository's own project."""

from __future__ import annotations

import pytest
import yaml

from stacks.tools.preflight import cli_version
from tests.infra.helpers import ROOT


def test_the_project_requires_a_cli_that_syncs_the_program_folder() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert cli_version.violations(project, ROOT) == []
    assert cli_version.admits(project["requiredPulumiVersion"], (3, 226, 0))
    assert not cli_version.admits(project["requiredPulumiVersion"], (3, 225, 3))


@pytest.mark.parametrize(("declared", "complaint"), [
    (None, "no requiredPulumiVersion"),
    (">=3.200.0", "admits CLI 3.225.99"),
    (">=3.226.0 <3.250.0", "refuses the CLI that matches infra/'s pulumi SDK"),
    ("<3.100.0 || >=3.226.0", "admits CLI 3.0.0"),
    ("at least 3.226", "not a semver range"),
    ("", "not a semver range"),
])
def test_a_range_that_lets_an_old_cli_in_or_keeps_the_pinned_one_out_is_refused(declared: str | None,
                                                                              complaint: str) -> None:
    project = {"name": "voicefleet", "runtime": "python", **({"requiredPulumiVersion": declared}
                                                             if declared is not None else {})}
    (found,) = cli_version.violations(project, ROOT)
    assert complaint in found


@pytest.mark.parametrize("declared", [">=3.226.0", ">=3.226.0 <4.0.0", ">3.225.99", ">=3.226.0 !3.230.1"])
def test_ranges_with_the_floor_pass(declared: str) -> None:
    project = {"name": "voicefleet", "runtime": "python", "requiredPulumiVersion": declared}
    assert cli_version.violations(project, ROOT) == []
