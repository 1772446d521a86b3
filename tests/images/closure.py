"""Rebuild an image's Python closure on this machine by running its Dockerfile's own `uv sync`.

There is no Docker engine here, so the tests and bench/image_size.py reproduce what the build stage
installs: the `uv sync` RUN is read from the Dockerfile and executed with the build stage's ENV, only
the venv location and the interpreter swapped for local ones. If the Dockerfile's command changes, the
measurement and the offline start-up proof change with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.images.dockerfile import Dockerfile, Stage, parse_file, shell_commands

REPO = Path(__file__).resolve().parents[2]
BOT_DOCKERFILE = REPO / "images" / "bot.Dockerfile"
DISPATCHER_DOCKERFILE = REPO / "images" / "dispatcher.Dockerfile"


def uv_sync_argv(stage: Stage) -> list[str]:
    """The one `uv sync …` command of a stage (a stage with none or several is a broken Dockerfile)."""
    found = [argv for run in stage.all("RUN") for argv in shell_commands(run) if argv[:2] == ["uv", "sync"]]
    if len(found) != 1:
        raise ValueError(f"expected exactly one `uv sync` in stage {stage.name!r}, found {len(found)}")
    return found[0]


def excluded_packages(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "--no-install-package"]


@dataclass(frozen=True)
class Closure:
    venv: Path
    argv: list[str]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        return next((self.venv / "lib").glob("python3.*/site-packages"))


def without_exclusions(argv: list[str]) -> list[str]:
    """The same `uv sync` with every `--no-install-package X` dropped: what the exclusions save."""
    skip = {i for i, arg in enumerate(argv) if arg == "--no-install-package"}
    return [arg for i, arg in enumerate(argv) if i not in skip and i - 1 not in skip]


def build_closure(
    dockerfile: Path,
    venv: Path,
    *,
    stage: str = "build",
    exclusions: bool = True,
    env_overrides: dict[str, str] | None = None,
) -> Closure:
    parsed: Dockerfile = parse_file(dockerfile)
    build = parsed.stage(stage)
    argv = uv_sync_argv(build)
    if not exclusions:
        argv = without_exclusions(argv)
    env = {**os.environ, **build.env()}
    env.update(
        UV_PROJECT_ENVIRONMENT=str(venv),
        # The image's /usr/local/bin/python3.11 is this machine's base interpreter of the same minor.
        UV_PYTHON=getattr(sys, "_base_executable", sys.executable),
        # Hard links instead of copies: same bytes on disk, much less I/O on a shared machine.
        UV_LINK_MODE="hardlink",
    )
    env.update(env_overrides or {})
    env.pop("VIRTUAL_ENV", None)  # `uv run` exports the dev venv; uv would warn about the mismatch
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([shutil.which("uv") or "uv", *argv[1:], "--quiet"], cwd=REPO, env=env, check=True)
    return Closure(venv=venv, argv=argv)


def runtime_env(dockerfile: Path, closure: Closure, home: Path) -> dict[str, str]:
    """The runtime stage's ENV as the container sees it, with /opt/venv mapped to the local venv.

    Nothing else of this machine's environment is inherited (no proxies, no caches, no HF_HOME)."""
    runtime = parse_file(dockerfile).final
    env: dict[str, str] = {"HOME": str(home), "LANG": "C.UTF-8"}
    for key, value in runtime.env().items():
        value = value.replace("/opt/venv", str(closure.venv))
        env[key] = value.replace("$PATH", "/usr/local/bin:/usr/bin:/bin")
    return env


def runtime_workdir(dockerfile: Path, dest: Path) -> Path:
    """The runtime stage's WORKDIR contents: only the sources it COPYs from the build context, directly
    or through a stage of the Dockerfile that copied them there (the bot's `code` stage)."""
    dest.mkdir(parents=True)
    parsed = parse_file(dockerfile)
    stages = {stage.name for stage in parsed.stages}
    for copy in parsed.final.all("COPY"):
        *sources, _ = copy.args.split()
        origin = copy.flag("from")
        if origin in stages:
            taken = {source.rstrip("/") for source in sources}
            sources = [
                source
                for stage_copy in parsed.stage(str(origin)).all("COPY")
                if stage_copy.flag("from") is None and stage_copy.args.split()[-1].rstrip("/") in taken
                for source in stage_copy.args.split()[:-1]
            ]
        elif origin is not None:
            continue
        for source in sources:
            target = dest / source.rstrip("/")
            shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def entrypoint_command(dockerfile: Path) -> list[str]:
    """The runtime ENTRYPOINT after tini's `--`: what runs once tini has set up signal forwarding."""
    entrypoint = parse_file(dockerfile).final.last("ENTRYPOINT")
    if entrypoint is None:
        raise ValueError(f"{dockerfile.name}: the runtime stage has no ENTRYPOINT")
    argv = entrypoint.exec_form()
    return argv[argv.index("--") + 1 :] if "--" in argv else argv
