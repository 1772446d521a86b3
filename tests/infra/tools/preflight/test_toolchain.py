"""Pulumi's uv toolchain gives the program `pulumi`, and the dispatcher's own install stays light.

The model (stacks/tools/preflight/toolchain.py) is checked against the arrangement a fresh clone had
before the program became its own uv project (it must flag it), against this repository (clean),
and uv itself is run the way Pulumi runs it, in a fresh copy of the tracked files, offline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from stacks.tools.mocks import Run
from stacks.tools.preflight import toolchain
from tests.infra.helpers import ROOT

PULUMI_PACKAGES = {"pulumi", "pulumi-aws", "pulumi-gcp", "pulumi-docker-build", "pulumi-azure-native",
                   "pulumi-kubernetes", "pulumi-random", "pulumi-tls"}
# The arrangement every stack had before: Pulumi.yaml without `main`, the program at the root,
# `default-groups = ["bot"]` and the Pulumi SDKs only in the `infra` group.
ROOT_PROJECT = """[project]
name = "voicefleet"
version = "0.1.0"
dependencies = ["fastapi>=0.115"]

[dependency-groups]
bot = ["pipecat-ai==1.14.0"]
infra = ["pulumi>=3.200,<4", "pulumi-aws>=7,<8", "pulumi-gcp>=9,<11", "pulumi-docker-build>=0.0.15"]

[tool.uv]
package = false
default-groups = ["bot"]
"""


def tracked_copy(destination: Path) -> Path:
    """The tracked files as this tree has them: what a fresh clone of this commit holds."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60)
    for name in listed.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination


def old_arrangement(tmp_path: Path) -> Path:
    shutil.copy2(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    project = (tmp_path / "Pulumi.yaml").read_text()
    (tmp_path / "Pulumi.yaml").write_text("\n".join(line for line in project.splitlines() if line != "main: infra/"))
    (tmp_path / "pyproject.toml").write_text(ROOT_PROJECT)
    shutil.copy2(ROOT / "uv.lock", tmp_path / "uv.lock")  # a lock of the same shape (root project + groups)
    shutil.copytree(ROOT / "stacks", tmp_path / "stacks")
    (tmp_path / "images").mkdir()
    shutil.copy2(ROOT / "images" / "component.py", tmp_path / "images" / "component.py")
    shutil.copy2(ROOT / "infra" / "__main__.py", tmp_path / "__main__.py")
    return tmp_path


def test_the_model_flags_the_arrangement_where_pulumis_uv_sync_drops_pulumi(tmp_path: Path) -> None:
    """What a new user hit: `uv sync` (default groups) has no pulumi, so the program cannot import it."""
    tree = old_arrangement(tmp_path)
    chain = toolchain.resolve(tree)
    assert chain.program_dir == tree and chain.venv == tree / ".venv"
    assert "pipecat-ai" in chain.installed and not PULUMI_PACKAGES & chain.installed
    problems = toolchain.violations(tree)
    listed = ("pulumi, pulumi-aws, pulumi-azure-native, pulumi-docker-build, pulumi-gcp, pulumi-kubernetes, "
              "pulumi-random, pulumi-tls")
    assert len(problems) == 1 and listed in problems[0], problems


def test_pulumis_uv_sync_installs_every_pulumi_package_the_program_imports() -> None:
    chain = toolchain.resolve(ROOT)
    assert chain.program_dir == ROOT / "infra" and chain.venv == ROOT / "infra" / ".venv"
    assert chain.project_dir == ROOT / "infra"
    assert toolchain.imported_pulumi_packages(ROOT) == PULUMI_PACKAGES
    assert PULUMI_PACKAGES <= chain.installed
    assert toolchain.violations(ROOT) == []


def test_an_edited_program_source_is_read_again_and_a_pulumi_import_it_gains_counted(tmp_path: Path) -> None:
    """Each plan reads the sources again (one parse per content is kept): a file edited between two plans
    in one process (a test's, an editor's) is what the second counts, and Pulumi.yaml's `main` too."""
    tree = old_arrangement(tmp_path)
    assert toolchain.imported_pulumi_packages(tree) == PULUMI_PACKAGES
    source = tree / "stacks" / "config" / "limits.py"
    source.write_text(source.read_text() + "\nimport pulumi_vault  # noqa: E402\n")
    assert toolchain.imported_pulumi_packages(tree) == PULUMI_PACKAGES | {"pulumi-vault"}
    (tree / "Pulumi.yaml").write_text("main: stacks/\n" + (tree / "Pulumi.yaml").read_text())
    assert toolchain.program_dir(tree) == tree / "stacks"


def test_the_dispatchers_default_install_stays_free_of_pulumi() -> None:
    """`uv sync` at the root (what the dispatcher image and `uv run python -m dispatcher` use)."""
    installed = toolchain.synced(ROOT)
    assert "fastapi" in installed
    assert not {name for name in installed if name.startswith("pulumi")}


def test_the_programs_lock_pins_what_the_tests_run() -> None:
    """The tests run the stacks in the repository's venv (its `infra` group): same versions as a deploy."""
    def versions(lock: Path) -> dict[str, str]:
        return {p["name"]: p["version"] for p in tomllib.loads(lock.read_text())["package"] if "version" in p}

    program, repository = versions(ROOT / "infra" / "uv.lock"), versions(ROOT / "uv.lock")
    shared = sorted(set(program) & set(repository))
    assert PULUMI_PACKAGES <= set(shared)
    assert {name: program[name] for name in shared} == {name: repository[name] for name in shared}


def test_docker_build_finds_the_context_and_dockerfiles_from_the_program_folder(aws: Run, tmp_path: Path) -> None:
    """Pulumi starts the docker-build plugin in the program folder, which resolves relative paths."""
    images = aws.of_type("docker-build:index:Image")
    assert len(images) == 2
    assert toolchain.build_context_violations(ROOT, images) == []
    # The same paths from a program run at the repository root would name folders outside it.
    assert len(toolchain.build_context_violations(old_arrangement(tmp_path), images)) == 4


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not installed")
# Two `uv sync`s of the program's closure and a plan: ~40 s of CPU, past the suite's 180 s once at a
# load average of 18 on 2 cores. Its own steps keep their 600 s deadlines; this one is above them.
@pytest.mark.timeout(900)
def test_uv_run_as_pulumi_runs_it_gives_a_fresh_copy_pulumi_and_the_offline_plan(tmp_path: Path) -> None:
    """Pulumi's own steps in a fresh copy, offline against the uv cache: `uv sync --inexact` in the
    program folder into the venv Pulumi picks, then that venv's python; then `uv sync` (what
    `pulumi install` runs) keeps pulumi. The plan then runs with that interpreter."""
    tree = tracked_copy(tmp_path / "clone")
    chain = toolchain.resolve(tree)
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(chain.venv), "UV_OFFLINE": "1"}
    env.pop("VIRTUAL_ENV", None)
    for step in (["uv", "sync", "--inexact", "--locked"], ["uv", "sync", "--locked"]):
        synced = subprocess.run(step, cwd=chain.program_dir, env=env, capture_output=True, text=True, timeout=600)
        assert synced.returncode == 0, synced.stderr
    python = chain.venv / "bin" / "python"
    plan = subprocess.run([str(python), "-m", "stacks.plan", "aws-dev", "gcp-dev"], cwd=tree,
                          env={k: v for k, v in env.items() if k != "UV_PROJECT_ENVIRONMENT"},
                          capture_output=True, text=True, timeout=600)
    assert plan.returncode == 0, plan.stdout[-2000:] + plan.stderr[-3000:]
    assert plan.stdout.startswith("# aws-dev: ") and "\n# gcp-dev: " in plan.stdout, plan.stdout[:500]
    assert not (tree / ".venv").exists()  # the repository's own venv was never touched
