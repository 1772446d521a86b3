"""The images' Python closures, rebuilt from uv.lock by the Dockerfiles' own `uv sync`, start offline.

The slow tests create the venvs (hard-linked from uv's cache, bytecode compiled as in the image) and run
the bot's entrypoint command with `--check` inside a network namespace that has no route anywhere
(`unshare -n`), with the runtime stage's ENV and a working directory holding only what the runtime
stage copies. A fetch at start-up (model, NLTK data, hub) would fail there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.images.closure import (
    BOT_DOCKERFILE,
    DISPATCHER_DOCKERFILE,
    REPO,
    Closure,
    entrypoint_command,
    excluded_packages,
    runtime_env,
    runtime_root,
    runtime_workdir,
    uv_sync_argv,
    write_host_path,
)
from tests.images.dockerfile import parse_file

# What a cloud session's bot imports: the host's Daily transport, Silero, the resamplers; and the
# project's own bot.py with its siblings (test_bot_closure_imports_everything_a_daily_session_uses).
DAILY_BOT_MODULES = [
    "bot.daily_mode",
    "bot.user_session",
    "bot.watch",
    "pipecat.audio.vad.silero",
    "pipecat.audio.utils",
]
ROOM_ARGS = ["--transport", "daily", "--room-url", "https://voicefleet.daily.co/offline-check"]

# Records every socket connect and name lookup a Python process makes, then runs `python -m bot`.
AUDITED_BOT = """
import runpy, sys
seen = []
def hook(event, args):
    if event in ("socket.connect", "socket.getaddrinfo"):
        seen.append(f"{event} {args[1] if event == 'socket.connect' else args[0]}")
sys.addaudithook(hook)
sys.argv = ["bot", *sys.argv[1:]]
try:
    runpy.run_module("bot", run_name="__main__", alter_sys=True)
finally:
    print("NETWORK:" + "|".join(seen), file=sys.stderr)
"""


def _unshare_works() -> bool:
    unshare = shutil.which("unshare")
    return unshare is not None and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0


needs_netns = pytest.mark.skipif(not _unshare_works(), reason="unshare -n needs root (CI runs as root)")


def _offline(
    closure: Closure, app: Path, home: Path, argv: list[str], **extra_env: str
) -> subprocess.CompletedProcess[str]:
    write_host_path(BOT_DOCKERFILE, closure.venv, app.parent)  # as the build stage does: `-I` reads no PYTHONPATH
    env = {**runtime_env(BOT_DOCKERFILE, closure, home, root=app.parent), **extra_env}
    return subprocess.run(["unshare", "-n", *argv], cwd=app, env=env, capture_output=True, text=True, timeout=120)


def test_bot_modules_import_with_the_excluded_packages_blocked() -> None:
    """Fast twin of the slow proof: the dev venv with every excluded distribution made unimportable."""
    excluded = excluded_packages(uv_sync_argv(parse_file(BOT_DOCKERFILE).stage("build")))
    script = f"""
import importlib, importlib.abc, importlib.metadata, sys
excluded = {{name.lower() for name in {excluded!r}}}
blocked = {{mod for mod, dists in importlib.metadata.packages_distributions().items()
           if dists and all(d.lower() in excluded for d in dists)}}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"excluded from the image: {{name}}", name=name)
        return None
sys.meta_path.insert(0, Block())
assert "cv2" in blocked and "numba" in blocked and "aiortc" in blocked, sorted(blocked)
for module in {DAILY_BOT_MODULES!r}:
    importlib.import_module(module)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def bot_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return runtime_root(BOT_DOCKERFILE, tmp_path_factory.mktemp("bot-image-root"))


@pytest.fixture(scope="module")
def bot_command() -> list[str]:
    return entrypoint_command(BOT_DOCKERFILE)


@pytest.mark.slow
def test_bot_closure_has_none_of_the_excluded_packages(bot_closure: Closure) -> None:
    installed = {p.name.split("-")[0].lower().replace("_", "-") for p in bot_closure.site_packages.glob("*.dist-info")}
    assert "pipecat-ai" in installed
    assert installed & {name.lower() for name in excluded_packages(bot_closure.argv)} == set()


@pytest.mark.slow
@needs_netns
def test_bot_check_passes_offline_with_the_projects_bot_file(
    bot_closure: Closure, bot_app: Path, bot_command: list[str], tmp_path: Path
) -> None:
    result = _offline(bot_closure, bot_app, tmp_path, [*bot_command, "--check", *ROOM_ARGS])
    assert result.returncode == 0, result.stderr[-3000:]
    # BOT_FILE=/app/bot.py in the image: here the project's copy under the runtime root.
    assert '"event": "checked"' in result.stdout and f'{bot_app / "bot.py"}"' in result.stdout


@pytest.mark.slow
@needs_netns
def test_bot_check_opens_no_socket_and_resolves_no_name(
    bot_closure: Closure, bot_app: Path, bot_command: list[str], tmp_path: Path
) -> None:
    python = bot_command[0]
    result = _offline(bot_closure, bot_app, tmp_path, [python, "-P", "-c", AUDITED_BOT, "--check", *ROOM_ARGS])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.rstrip().splitlines()[-1] == "NETWORK:"


@pytest.mark.slow
def test_bot_closure_imports_everything_a_daily_session_uses(bot_closure: Closure, bot_app: Path) -> None:
    script = (f"import importlib, importlib.util, sys\n"
              f"for m in {DAILY_BOT_MODULES!r}:\n    importlib.import_module(m)\n"
              "sys.path.insert(0, '.')\n"  # the project's siblings, as the host makes them importable
              "spec = importlib.util.spec_from_file_location('user_bot', 'bot.py')\n"
              "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n")
    result = subprocess.run(
        [str(bot_closure.python), "-P", "-c", script], cwd=bot_app, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(bot_app.parent / "opt" / "voicefleet"), "PATH": "/usr/bin:/bin"}
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_every_dispatcher_module_imports_in_the_dispatcher_closure(dispatcher_closure: Closure, tmp_path: Path) -> None:
    closure = dispatcher_closure
    app = runtime_workdir(DISPATCHER_DOCKERFILE, tmp_path / "app")
    script = (
        "import importlib, pkgutil, dispatcher\n"
        "for m in pkgutil.walk_packages(dispatcher.__path__, 'dispatcher.'):\n"
        # The Modal provider's modules need the `modal` group, which this image leaves out: a
        # dispatcher with MACHINES=modal refuses to start here, in one line naming the group.
        "    if not m.name.startswith('dispatcher.machines.modal.'):\n"
        "        importlib.import_module(m.name)\n"
        "from dispatcher.machines.modal.settings import modal_installed\n"
        "from dispatcher.settings import SettingsError\n"
        "try:\n"
        "    modal_installed()\n"
        "    raise SystemExit('the dispatcher image has the modal client')\n"
        "except SettingsError as e:\n"
        "    assert 'uv sync --group modal' in str(e), e\n"
        "import sys; assert 'pipecat' not in sys.modules\n"
    )
    result = subprocess.run([str(closure.python), "-c", script], cwd=app, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not list(closure.site_packages.glob("pipecat*"))
