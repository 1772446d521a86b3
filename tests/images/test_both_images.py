"""Properties both images share: what the lockfile puts in them, labels, portability, build context."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from images.dockerignore import PatternMatcher, ignore_file_patterns
from tests.images.closure import (
    BOT_DOCKERFILE,
    DEFAULT_BOT_PROJECT,
    DISPATCHER_DOCKERFILE,
    REPO,
    excluded_packages,
    install_command,
    uv_sync_argv,
)
from tests.images.dockerfile import Dockerfile, parse_file

DOCKERFILES = pytest.mark.parametrize("path", [BOT_DOCKERFILE, DISPATCHER_DOCKERFILE], ids=["bot", "dispatcher"])


def locked_closure(dockerfile: Dockerfile, stage: str = "build", project: Path = DEFAULT_BOT_PROJECT) -> set[str]:
    """Package names the Dockerfile's `uv sync` installs, resolved from uv.lock by `uv export`.

    The sync flags translate one to one (`--no-install-package` is `--no-emit-package` for export),
    so this is the image's closure for the build platform without creating a venv."""
    argv, cwd = install_command(dockerfile.stage(stage), project)
    sync = argv[2:]
    export = [arg for arg in sync if arg != "--no-install-project"]
    export = ["--no-emit-package" if arg == "--no-install-package" else arg for arg in export]
    out = subprocess.run(
        ["uv", "export", *export, "--no-hashes", "--no-header", "--no-annotate", "--format", "requirements.txt"],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {re.split(r"[=;\s]", line, maxsplit=1)[0].lower() for line in out.splitlines() if "==" in line}


def test_dispatcher_closure_has_no_pipecat_and_no_audio_or_ml_libraries() -> None:
    closure = locked_closure(parse_file(DISPATCHER_DOCKERFILE))
    heavy = {"pipecat-ai", "numpy", "onnxruntime", "daily-python", "aiortc", "av", "soundfile", "torch"}
    assert closure & heavy == set()
    assert {"fastapi", "uvicorn", "aiohttp", "botocore", "google-auth", "redis"} <= closure
    assert {"boto3", "s3transfer"} & closure == set()  # the dispatcher imports botocore only


def test_bot_closure_has_pipecat_and_no_torch_and_no_excluded_package() -> None:
    dockerfile = parse_file(BOT_DOCKERFILE)
    closure = locked_closure(dockerfile)
    assert {"pipecat-ai", "onnxruntime", "daily-python"} <= closure
    assert "torch" not in closure
    assert closure & set(excluded_packages(uv_sync_argv(dockerfile.stage("build")))) == set()


@DOCKERFILES
def test_image_runs_as_a_numeric_non_root_user(path: Path) -> None:
    user = parse_file(path).final.last("USER")
    assert user is not None
    uid = user.args.split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so runAsNonRoot can check it without /etc/passwd


@DOCKERFILES
def test_image_bakes_in_no_revision_so_its_digest_follows_its_content(path: Path) -> None:
    """A revision label or build arg would change both digests on every commit, docs included
    (review item 9): the revision is an extra registry tag (images/component.py) instead."""
    parsed = parse_file(path)
    runtime = parsed.final
    labels = runtime.labels()
    assert "org.opencontainers.image.revision" not in labels
    args = {k for stage in parsed.stages for arg in stage.all("ARG") for k in arg.pairs()} | set(parsed.global_args)
    assert "SOURCE_REVISION" not in args
    assert labels["org.opencontainers.image.title"] and labels["org.opencontainers.image.source"]


@DOCKERFILES
def test_image_has_no_architecture_specific_reference(path: Path) -> None:
    parsed = parse_file(path)
    text = " ".join(
        [*parsed.global_args.values(), *(s.base for s in parsed.stages)]
        + [i.args for s in parsed.stages for i in s.instructions]
    )
    assert re.findall(r"amd64|x86_64|aarch64|arm64|linux/", text) == []


def _dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """BuildKit's rule (images/dockerignore.py): the last pattern matching the path or a parent decides."""
    return PatternMatcher(patterns).matches_or_parent_matches(path.strip("/"))


@pytest.fixture(scope="module")
def dockerignore() -> list[str]:
    return ignore_file_patterns(REPO / ".dockerignore")


def test_dockerignore_keeps_the_venv_git_and_tests_out_of_the_build_context(dockerignore: list[str]) -> None:
    for path in (".venv/lib/python3.11/site-packages/x.py", ".git/HEAD", "tests/__init__.py", "bench/x.py"):
        assert _dockerignore_excludes(dockerignore, path), path


def test_dockerignore_keeps_stale_bytecode_out_of_the_build_context(dockerignore: list[str]) -> None:
    assert _dockerignore_excludes(dockerignore, "bot/__pycache__/__main__.cpython-311.pyc")
    assert _dockerignore_excludes(dockerignore, "dispatcher/machines/__pycache__/x.cpython-311.pyc")


@DOCKERFILES
def test_every_context_path_a_dockerfile_uses_survives_dockerignore(path: Path, dockerignore: list[str]) -> None:
    used: list[str] = []
    for stage in parse_file(path).stages:
        for copy in stage.all("COPY"):
            if copy.flag("from") is None:
                used += copy.args.split()[:-1]
        for run in stage.all("RUN"):
            used += [m.split("source=")[1].split(",")[0] for m in run.flag_values("mount") if "source=" in m]
    assert used
    for source in used:
        assert (REPO / source).exists(), source
        assert not _dockerignore_excludes(dockerignore, source), source
        if (REPO / source).is_dir():
            assert not _dockerignore_excludes(dockerignore, f"{source.rstrip('/')}/__init__.py"), source
