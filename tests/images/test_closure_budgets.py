"""Each image's runtime closure stays within its budget (images/budgets.py): a contract on what is
built, checked on the closures rebuilt by the Dockerfiles' own commands (the built images are checked
the same way by images/ci/run_image.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from images.budgets import CLOSURE_BUDGET_MB, MB, installed_mb, over_budget
from tests.images.closure import DISPATCHER_DOCKERFILE, Closure, runtime_workdir, venv_edits
from tests.images.dockerfile import parse, parse_file


def test_sizes_are_the_regular_files_apparent_bytes(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "mod.py").write_bytes(b"x" * (2 * MB))
    (tmp_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"p" * 1000)
    (tmp_path / "link.py").symlink_to(tmp_path / "pkg" / "mod.py")
    assert installed_mb(tmp_path) * MB == 2 * MB + 1000


def test_a_closure_over_its_budget_is_named_with_its_size(tmp_path: Path) -> None:
    big = tmp_path / "big.so"
    with big.open("wb") as file:  # sparse: apparent size without writing 80 MB
        file.truncate(int(CLOSURE_BUDGET_MB["dispatcher"] * MB) + 1)
    problem = over_budget("dispatcher", tmp_path)
    assert problem is not None and "dispatcher closure is 80.0 MB, over its 80 MB budget" in problem
    with big.open("r+b") as file:
        file.truncate(int(CLOSURE_BUDGET_MB["dispatcher"] * MB))
    assert over_budget("dispatcher", tmp_path) is None


def test_the_rebuilt_dispatcher_closure_replays_the_builds_botocore_pruning() -> None:
    build = parse_file(DISPATCHER_DOCKERFILE).stage("build")
    (edit,) = venv_edits(build, "/opt/venv")
    assert "botocore/data" in edit


def test_a_venv_edit_that_needs_a_mount_is_refused_rather_than_skipped() -> None:
    build = parse(
        "FROM python AS build\n"
        "RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen\n"
        "RUN --mount=type=bind,source=x,target=/x rm -rf /opt/venv/lib/python3.11/site-packages/big\n"
    ).stage("build")
    with pytest.raises(ValueError, match="cannot be replayed"):
        venv_edits(build, "/opt/venv")


@pytest.mark.slow
def test_dispatcher_closure_is_within_its_budget(dispatcher_closure: Closure) -> None:
    assert over_budget("dispatcher", dispatcher_closure.site_packages) is None
    # What the image holds, not what `uv sync` put there: only the kept botocore models remain.
    models = {p.name for p in (dispatcher_closure.site_packages / "botocore" / "data").iterdir() if p.is_dir()}
    assert models == {"ecs", "s3", "sts", "sso", "sso-oidc"}


@pytest.mark.slow
def test_dispatcher_closure_holds_nothing_the_dispatcher_never_imports(dispatcher_closure: Closure) -> None:
    installed = {p.name.split("-")[0].lower() for p in dispatcher_closure.site_packages.glob("*.dist-info")}
    assert not installed & {"boto3", "s3transfer", "httpx", "pipecat_ai", "pytest", "moto", "pulumi"}


@pytest.mark.slow
def test_bot_closure_is_within_its_budget(bot_closure: Closure) -> None:
    assert over_budget("bot", bot_closure.site_packages) is None


@pytest.mark.slow
def test_the_pruned_dispatcher_closure_still_resolves_the_aws_credential_chain(
    dispatcher_closure: Closure, tmp_path: Path
) -> None:
    """What the ecs provider takes from botocore (dispatcher/machines/ecs/credentials.py) works with only
    the models the build keeps and without boto3."""
    app = runtime_workdir(DISPATCHER_DOCKERFILE, tmp_path / "app")
    script = (
        "from dispatcher.machines.ecs.credentials import default_chain\n"
        "credentials = default_chain()\n"
        "assert credentials.access_key == 'AKIDPROBE', credentials\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_ACCESS_KEY_ID": "AKIDPROBE",
           "AWS_SECRET_ACCESS_KEY": "probe-not-a-secret", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true"}
    result = subprocess.run([str(dispatcher_closure.python), "-c", script], cwd=app, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_projects_own_budget_replaces_the_default_one(tmp_path: Path) -> None:
    """A bot project over the parrot's budget (its plan warned) raised its own knowingly, as a
    stack's botImageBudgetMb does; the built image is held to that one, and past it still fails."""
    big = tmp_path / "big.so"
    with big.open("wb") as file:
        file.truncate(int(500 * MB))
    assert over_budget("bot", tmp_path) is not None  # over the parrot's 400 MB
    assert over_budget("bot", tmp_path, budget_mb=700) is None
    problem = over_budget("bot", tmp_path, budget_mb=450)
    assert problem is not None and "over its 450 MB budget (the project's own)" in problem
