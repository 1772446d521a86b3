"""images/ci/build.sh's buildah store per bot project (images/ci/project_store.sh): two projects get
two stores, so .ci/run's builds of the parrot and of another project keep each other's layer cache;
and the hash that drops a store's cache changes with any file the RUN steps bind-mount (buildah 1.28
does not see them), the project's bot.py as well as its lock, and with nothing else."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "images" / "ci" / "project_store.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("tar") is None, reason="needs bash, tar")


def sourced(call: str, cwd: Path = REPO) -> str:
    return subprocess.run(["bash", "-c", f'set -euo pipefail; source "{SCRIPT}"; {call}'], cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=True).stdout.strip()


def project(folder: Path, bot: str = "async def bot(runner_args): ...\n") -> Path:
    folder.mkdir(parents=True)
    (folder / "bot.py").write_text(bot)
    (folder / "uv.lock").write_text("version = 1\n")
    return folder


def test_each_project_gets_its_own_store_and_storage_conf(tmp_path: Path) -> None:
    parrot, twilio = project(tmp_path / "a" / "parrot"), project(tmp_path / "b" / "twilio_inbound")
    work = tmp_path / "work"
    stores = [Path(sourced(f'project_store "{work}" "{folder}"')) for folder in (parrot, twilio, parrot)]
    assert stores[0] != stores[1] and stores[0] == stores[2]  # the same project finds its store again
    assert stores[0].parent == work / "stores" and stores[0].name.startswith("parrot-")
    conf = (stores[1] / "storage.conf").read_text()
    assert f'graphroot = "{stores[1]}/graph"' in conf and f'runroot = "{stores[1]}/run"' in conf
    assert 'driver = "overlay"' in conf


def test_the_cache_hash_follows_every_bind_mounted_file_and_nothing_else(tmp_path: Path) -> None:
    folder = project(tmp_path / "bot")
    before = sourced(f'build_inputs_hash "{folder}"')
    (folder / ".venv").mkdir()
    (folder / ".venv" / "python").write_text("a local virtualenv is not in the build context")
    (folder / "bot.py").touch()  # a new mtime, the same content
    assert sourced(f'build_inputs_hash "{folder}"') == before
    (folder / "bot.py").write_text("async def bot(runner_args): print('changed')\n")
    assert sourced(f'build_inputs_hash "{folder}"') != before


def test_the_same_project_in_two_clones_shares_its_store(tmp_path: Path) -> None:
    """One store per clone would leave gigabytes behind each fresh clone a CI run makes."""
    work = tmp_path / "work"
    first, second = (tmp_path / clone for clone in ("clone-1", "clone-2"))
    for clone in (first, second):
        project(clone / "examples" / "parrot")
    stores = [sourced(f'project_store "{work}" examples/parrot', cwd=clone) for clone in (first, second)]
    assert stores[0] == stores[1]
    project(first / "examples" / "other")
    assert sourced(f'project_store "{work}" examples/other', cwd=first) != stores[0]
