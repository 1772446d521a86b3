"""The README's deploy commands, exactly as written, in a fresh clone, up to the offline plan.

What a new user runs first: `git clone`, then the Deploy block's commands until (and including) the
offline plan; the commands after it need the Pulumi CLI and a cloud account. Offline against the uv
cache (UV_OFFLINE), with no virtualenv of this checkout in the environment, so the clone must get
everything the plan imports from its own lock files.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra.helpers import ROOT

PLAN = "python -m stacks.plan"


def deploy_commands(readme: str) -> list[str]:
    """The first ```sh block of the README's Deploy section, up to the offline plan, comments dropped."""
    section = readme.split("\n## Deploy\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the README's Deploy section has no sh block"
    commands: list[str] = []
    for line in block.group(1).splitlines():
        command = re.sub(r"\s+#.*$", "", line).strip()
        if command and not command.startswith("#"):
            commands.append(command)
            if PLAN in command:
                return commands
    raise AssertionError(f"the README's deploy block never runs the offline plan ({PLAN})")


def test_the_deploy_block_reaches_the_offline_plan_before_anything_needs_a_cloud() -> None:
    commands = deploy_commands((ROOT / "README.md").read_text())
    assert commands[-1].startswith("uv run --project infra ")  # the program's own project, as Pulumi runs it
    assert not [c for c in commands if c.split()[0] == "pulumi"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("uv") is None or shutil.which("git") is None, reason="needs uv and git")
def test_the_readmes_deploy_commands_run_in_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "voicefleet"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, capture_output=True, timeout=300)
    commands = deploy_commands((clone / "README.md").read_text())
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH")}
    env["UV_OFFLINE"] = "1"
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(commands)], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert done.stdout.startswith("# aws-dev: "), done.stdout[:500]
    assert (clone / "infra" / ".venv").is_dir() and not (clone / ".venv").exists()
    # The drain before a destroy runs in the same project (README: `uv run --project infra python -m
    # stacks.drain`): it lists and stops machines through the providers, without Redis or Prometheus.
    drain = subprocess.run(["uv", "run", "--project", "infra", "python", "-c", "import stacks.tools.drain"],
                           cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert drain.returncode == 0, drain.stderr[-4000:]
