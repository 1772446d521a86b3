"""Rebuild an image's Python closure on this machine by running its Dockerfile's own `uv sync`.

There is no Docker engine here, so the tests and bench/image_size.py reproduce what the build stage
installs: the `uv sync` RUN is read from the Dockerfile and executed with the build stage's ENV, only
the venv location and the interpreter swapped for local ones, then the stage's later RUNs that edit
the venv (the dispatcher's botocore pruning) replayed on it. If the Dockerfile's commands change, the
measurement, the budget check and the offline start-up proof change with them.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from images.bot_project import BotProject
from images.bot_project import read as read_project
from images.bot_transports import IMAGE_LEAVES_OUT
from tests.images.dockerfile import Dockerfile, Stage, parse_file, shell_commands

REPO = Path(__file__).resolve().parents[2]
BOT_DOCKERFILE = REPO / "images" / "bot.Dockerfile"
DISPATCHER_DOCKERFILE = REPO / "images" / "dispatcher.Dockerfile"


# The bot image installs a bot project's dependencies with images/install_project.sh (the project's
# folder is the build's `bot-project` context); the closure here is the default project's.
INSTALL_SCRIPT = REPO / "images" / "install_project.sh"
DEFAULT_BOT_PROJECT = REPO / "examples" / "parrot"


def _script_sync_flags() -> list[str]:
    """The flags of the script's own `uv sync` line (read from it, so they cannot drift apart)."""
    for line in INSTALL_SCRIPT.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if words[:2] == ["uv", "sync"]:
            return [word for word in words[2:] if not word.startswith("$")]
    raise ValueError(f"{INSTALL_SCRIPT} has no `uv sync` line")


def _installs(argv: list[str]) -> bool:
    """The dispatcher's own `uv sync`, or the bot's install_project.sh."""
    return argv[:2] == ["uv", "sync"] or bool(argv) and Path(argv[0]).name == INSTALL_SCRIPT.name


def install_command(stage: Stage, project: Path = DEFAULT_BOT_PROJECT) -> tuple[list[str], Path]:
    """The one install command of a stage as the `uv sync …` it runs, and where it runs: the
    dispatcher's own `uv sync` in the repository, or the bot's install_project.sh in the bot project
    (one `--no-install-package` per argument, `$BOT_EXCLUDE_PACKAGES` from the project's
    [tool.voicefleet]). A stage with none or several is a broken Dockerfile."""
    found: list[tuple[list[str], Path]] = []
    for argv in (argv for run in stage.all("RUN") for argv in shell_commands(run)):
        if argv[:2] == ["uv", "sync"]:
            found.append((argv, REPO))
        elif argv and Path(argv[0]).name == INSTALL_SCRIPT.name:
            packages = [name for arg in argv[1:] for name in _expanded(arg, read_project(project))]
            leave_out = [word for name in packages for word in ("--no-install-package", name)]
            found.append((["uv", "sync", *_script_sync_flags(), *leave_out], project))
    if len(found) != 1:
        raise ValueError(f"expected exactly one install command in stage {stage.name!r}, found {len(found)}")
    return found[0]


def _expanded(arg: str, project: BotProject) -> tuple[str, ...]:
    """An argument of install_project.sh as the build passes it: the project's exclude-packages, an
    image's transport packages to leave out (images/component.py and images/ci/build.sh pass each
    build argument BotProject.leaves_out), or a package name."""
    if arg == "$BOT_EXCLUDE_PACKAGES":
        return project.exclude_packages
    for image, (_, _, argument) in IMAGE_LEAVES_OUT.items():
        if arg == f"${argument}":
            return project.leaves_out(image)
    assert not arg.startswith("$"), f"install_project.sh is handed {arg}, which the build does not pass"
    return (arg,)


def uv_sync_argv(stage: Stage) -> list[str]:
    return install_command(stage)[0]


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
    argv, cwd = install_command(build)
    if not exclusions:
        argv = without_exclusions(argv)
    build_env = parsed.effective(stage).env()  # a stage built FROM another inherits its ENV
    env = {**os.environ, **build_env}
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
    subprocess.run([shutil.which("uv") or "uv", *argv[1:], "--quiet"], cwd=cwd, env=env, check=True)
    image_venv = build_env["UV_PROJECT_ENVIRONMENT"]
    for step in venv_edits(build, image_venv):
        # With the image's venv path swapped for the local one (same python minor: python3.11).
        subprocess.run(["sh", "-ec", step.replace(image_venv, str(venv))], env=env, check=True, timeout=120)
    return Closure(venv=venv, argv=argv)


def venv_edits(stage: Stage, image_venv: str) -> list[str]:
    """The stage's RUNs after its install command that change the installed venv (the dispatcher's
    botocore model pruning): the closure the image ships is the one after them. One that needs a
    mount cannot be replayed here and is refused rather than silently skipped."""
    runs = stage.all("RUN")
    install = next(i for i, run in enumerate(runs) if any(map(_installs, shell_commands(run))))
    edits = [run for run in runs[install + 1 :] if image_venv in run.args]
    for run in edits:
        if run.flag_values("mount"):
            raise ValueError(f"line {run.line}: a RUN that changes {image_venv} with a mount cannot be replayed")
    return [run.args for run in edits]


def runtime_env(dockerfile: Path, closure: Closure, home: Path, root: Path | None = None) -> dict[str, str]:
    """The runtime stage's ENV as the container sees it, with /opt/venv mapped to the local venv and,
    given the `root` runtime_root filled, the image paths it holds (/opt/voicefleet, /app) to it.

    Nothing else of this machine's environment is inherited (no proxies, no caches, no HF_HOME)."""
    runtime = parse_file(dockerfile).final
    mapped = {"/opt/venv": str(closure.venv)}
    if root is not None:
        mapped |= {f"/{top.name}/{child.name}": str(child) for top in root.iterdir() if top.is_dir()
                   for child in top.iterdir()} | {"/app": str(root / "app")}
    env: dict[str, str] = {"HOME": str(home), "LANG": "C.UTF-8"}
    for key, value in runtime.env().items():
        for image_path, local in sorted(mapped.items(), key=lambda item: -len(item[0])):
            value = re.sub(rf"(?<![\w/]){re.escape(image_path)}(?=/|:|$)", local, value)
        env[key] = value.replace("$PATH", "/usr/local/bin:/usr/bin:/bin")
    return env


def runtime_root(dockerfile: Path, root: Path, project: Path = DEFAULT_BOT_PROJECT) -> Path:
    """What the bot's runtime stage holds of code, at its image paths under `root`: voicefleet's host
    (the code stage's COPYs from the context) and the bot project (/app); returns root/app, the
    runtime WORKDIR."""
    parsed = parse_file(dockerfile)
    for copy in parsed.stage("code").all("COPY"):
        if copy.flag("from") is None and copy.args.split()[0] != "images/install_project.sh":
            source, dest = copy.args.split()
            shutil.copytree(REPO / source, root / dest.strip("/"), ignore=shutil.ignore_patterns("__pycache__"))
    app = root / "app"
    shutil.copytree(project, app, ignore=shutil.ignore_patterns("__pycache__", ".venv", ".git", ".env"))
    return app


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


def host_path_runs(dockerfile: Path, stage: str) -> list[str]:
    """The stage's RUNs that put the host's code on the venv's path (a .pth file: the isolated
    entrypoint ignores PYTHONPATH)."""
    return [run.args for run in parse_file(dockerfile).stage(stage).all("RUN") if "voicefleet.pth" in run.args]


def write_host_path(dockerfile: Path, venv: Path, root: Path, stage: str = "build") -> None:
    """Replays those RUNs into `venv`, the image's /opt/voicefleet being `root`'s."""
    for run in host_path_runs(dockerfile, stage):
        subprocess.run(["sh", "-ec", run.replace("/opt/venv", str(venv)).replace("/opt/voicefleet",
                                                                                    str(root / "opt" / "voicefleet"))],
                       check=True, timeout=60)

