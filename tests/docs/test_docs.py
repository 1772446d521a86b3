"""The documentation holds: links resolve, every variable the code reads is documented once, and
the commands marked runnable run (docs/testing.md, "Runnable commands in the documentation")."""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.docs.env_reads import VARIABLE, environment_reads
from tests.docs.markdown import Block, blocks, broken_links, links, stray_markers
from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
# Research notes the design cites are background, not user documentation.
USER_DOCS = [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").rglob("*.md") if "reference" not in p.parts)
CONFIGURATION = ROOT / "docs" / "configuration.md"
# Every package that ships, the example bots and the `voicefleet` command.
CODE = ["voicefleet_settings", "dispatcher", "bot", "botchannel", "stacks", "images", "policy", "infra", "examples",
        "src/voicefleet"]
SERVER_ADDRESS = re.compile(r"\b(localhost|127\.0\.0\.1):8080\b")
COMMAND_SECONDS = 120


def documented_variables(path: Path = CONFIGURATION) -> list[str]:
    """The names in the first column of every `| variable | …` table, one entry per row mention.

    `FLY_CREATE_RATE` / `_BURST` / `_MAX_WAIT`: a name starting with `_` shares the first name's prefix."""
    names: list[str] = []
    in_table = False
    for line in path.read_text().splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        first = line.strip("|").split("|")[0].strip()
        if first == "variable":
            in_table = True
            continue
        if not in_table:
            continue
        quoted = re.findall(r"`([^`]*)`", first)
        full = [q for q in quoted if VARIABLE.match(q)]
        for name in quoted:
            if name.startswith("_") and full:
                names.append(full[0].rsplit("_", 1)[0] + name)
            elif VARIABLE.match(name):
                names.append(name)
    return names


def test_the_user_docs_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in USER_DOCS}
    assert {"README.md", "docs/README.md", "docs/configuration.md", "docs/http-api.md"} <= names
    assert not any(name.startswith("docs/reference/") for name in names)


def test_every_relative_link_resolves() -> None:
    assert broken_links(USER_DOCS) == []


def module_paths(text: str) -> set[str]:
    """The dispatcher's and the Pulumi program's source files a page names (`dispatcher/api/mount.py`,
    `stacks/aws/store.py`), not tests' (`tests/dispatcher/…`)."""
    return set(re.findall(r"(?<![\w/.])(?:dispatcher|stacks)/[\w/]+\.py\b", text))


def test_every_dispatcher_and_stacks_module_the_docs_name_exists() -> None:
    missing = {(page.relative_to(ROOT).as_posix(), path)
               for page in USER_DOCS for path in module_paths(page.read_text()) if not (ROOT / path).is_file()}
    assert sorted(missing) == []


def test_the_module_path_scan_reads_paths_not_test_paths() -> None:
    text = ("see `dispatcher/api/mount.py`, dispatcher/phone/access.py, stacks/aws/store.py and "
            "tests/dispatcher/api/test_start.py, tests/infra/aws/test_store.py")
    assert module_paths(text) == {"dispatcher/api/mount.py", "dispatcher/phone/access.py", "stacks/aws/store.py"}


def test_the_index_links_every_page() -> None:
    index = ROOT / "docs" / "README.md"
    linked = {(index.parent / link.target.partition("#")[0]).resolve() for link in links(index)}
    pages = {p.resolve() for p in USER_DOCS if p.parent == index.parent and p != index}
    assert sorted(p.name for p in pages - linked) == []


def test_a_broken_link_or_anchor_is_reported(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# A heading\n\n## Twice\n\n## Twice\n\n## The `x/y.py` module (2)\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "[fine](other.md#a-heading), [second](other.md#twice-1), [self](#page), [web](https://example.com/x)\n"
        "[code in a heading](other.md#the-xypy-module-2)\n"
        "[gone](missing.md) and [no anchor](other.md#nowhere)\n"
        "`[in code](missing-too.md)`\n\n"
        "```\n[in a block](missing-three.md)\n```\n"
    )
    assert broken_links([page]) == [
        f"{page}:5: missing.md (no such file)",
        f"{page}:5: other.md#nowhere (no heading #nowhere in other.md)",
    ]


@functools.cache
def code_reads() -> dict[str, set[str]]:
    """Every variable the shipped code reads, and where: one scan per run, read by the tests below (it
    parses and walks ~1,000 files three times each: ~15 s of CPU)."""
    return environment_reads(ROOT / package for package in CODE)


def test_every_variable_the_code_reads_is_documented_exactly_once() -> None:
    read = code_reads()
    documented = documented_variables()
    repeated = sorted({name for name in documented if documented.count(name) > 1})
    assert repeated == [], "documented more than once in docs/configuration.md"
    missing = {name: sorted(where) for name, where in read.items() if name not in documented}
    assert missing == {}, "read by the code, not in docs/configuration.md"
    assert sorted(set(documented) - set(read)) == [], "in docs/configuration.md, read by no code"


def test_the_variable_scan_sees_each_kind_of_read() -> None:
    """The scan is the test's eyes: each way the code reads a variable must be seen."""
    read = code_reads()
    assert "PORT" in read  # int_setting(env, "PORT", …)
    assert "FLY_CREATE_BURST" in read  # Rate.from_env(env, "FLY_CREATE", …) → f"{prefix}_BURST"
    assert "ECS_CLUSTER" in read  # a local tuple handed to require({**env, …}, names, …)
    assert "CARTESIA_API_KEY" in read  # a loop over SERVICE_KEY_VARIABLES, and env["…"]
    assert "VOICEFLEET_SESSION_ID" in read  # env.get(ENV_SESSION_ID), a module constant
    assert "BOT_LOG_LEVEL" in read  # os.environ.get("…")


def test_the_variable_scan_finds_reads_in_new_code(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "mod.py").write_text(
        "import os\n"
        "NAME = 'FROM_CONSTANT'\n"
        "def f(env):\n"
        "    os.environ.setdefault('NOT_A_SETTING', '1')\n"
        "    env['WRITTEN'] = 'x'\n"
        "    return env.get('DIRECT'), env[NAME], 'TESTED' in env, helper(env, 'PREFIX')\n"
        "def helper(env, prefix):\n"
        "    return env.get(f'{prefix}_RATE')\n"
    )
    assert sorted(environment_reads([package])) == ["DIRECT", "FROM_CONSTANT", "PREFIX_RATE", "TESTED"]


def _runnable() -> list[Block]:
    return [block for path in USER_DOCS for block in blocks(path) if block.marker is not None]


def _name(block: Block) -> str:
    return f"{block.path.relative_to(ROOT)}:{block.line}"


def test_runnable_markers_are_known_and_attached() -> None:
    assert [p for path in USER_DOCS for p in stray_markers(path)] == []
    kinds = {block.marker for block in _runnable()}
    assert kinds <= {"", "server", "with-server"}
    assert len([b for b in _runnable() if b.marker == "server"]) == 1  # the one the others run against


def _bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=COMMAND_SECONDS)


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in _runnable() if b.marker == ""], ids=_name)
def test_a_runnable_block_runs(block: Block) -> None:
    done = _bash(block.text, dict(os.environ))
    assert done.returncode == 0, f"{_name(block)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    """The README's server command, on a free port, until the module's tests are done."""
    (block,) = [b for b in _runnable() if b.marker == "server"]
    port = free_port()
    env = {**os.environ, "PORT": str(port)}
    process = subprocess.Popen(["bash", "-euo", "pipefail", "-c", block.text], cwd=ROOT, env=env,
                               start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + COMMAND_SECONDS
        while True:
            assert process.poll() is None, f"{_name(block)} exited {process.returncode}: {process.communicate()[0]}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{_name(block)}: no /healthz within {COMMAND_SECONDS} s"
            time.sleep(0.2)  # polling a process that offers no readiness signal of its own
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.slow
def test_the_server_command_serves(server: int) -> None:
    assert httpx.get(f"http://127.0.0.1:{server}/healthz", timeout=10).status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in _runnable() if b.marker == "with-server"], ids=_name)
def test_a_block_runs_against_the_server(block: Block, server: int) -> None:
    done = _bash(SERVER_ADDRESS.sub(f"127.0.0.1:{server}", block.text), dict(os.environ))
    assert done.returncode == 0, f"{_name(block)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert '"error"' not in done.stdout, f"{_name(block)}: the dispatcher answered an error:\n{done.stdout}"


def test_the_readme_is_a_landing_page_whose_test_command_is_what_ci_runs() -> None:
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 200
    first, second = [block.text.strip() for block in blocks(readme)[:2]]
    assert first.startswith("uv run python -m dispatcher")
    test_command = second.split("#")[0].strip()
    ci = [line.split("#")[0].strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "pytest" in test_command and test_command in ci
