"""Local mode runs the user's bot: `BOT_FILE` names it, `BOT_PYTHON` the interpreter it runs with,
both listed by `python -m dispatcher --help`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

from dispatcher.machines.local.provider import LocalSettings
from tests.support.processes import run_dispatcher
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[3]
GREETER = REPO / "tests" / "bots" / "greeter.py"


def test_bot_python_is_the_interpreter_of_the_bot_command_and_local_bot_command_still_wins() -> None:
    assert LocalSettings.from_env({}).bot_command == (sys.executable, "-m", "bot")
    assert LocalSettings.from_env({"BOT_PYTHON": "/opt/mybot/.venv/bin/python"}).bot_command == (
        "/opt/mybot/.venv/bin/python", "-m", "bot")  # fmt: skip
    both = {"BOT_PYTHON": "/opt/mybot/.venv/bin/python", "LOCAL_BOT_COMMAND": "mybot --x"}
    assert LocalSettings.from_env(both).bot_command == ("mybot", "--x")


def test_help_lists_bot_file_and_bot_python() -> None:
    result = subprocess.run([sys.executable, "-m", "dispatcher", "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0
    assert "BOT_FILE" in result.stdout and "BOT_PYTHON" in result.stdout


def test_a_start_runs_the_bot_file_with_the_named_interpreter(tmp_path: Path) -> None:
    """The interpreter is a wrapper that leaves a mark and runs this one: the mark is the proof."""
    mark = tmp_path / "used"
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\necho "$@" >> {mark}\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    env = {"RESERVE_MAX_IDLE": "0", "BOT_PYTHON": str(python), "BOT_FILE": str(GREETER)}
    with run_dispatcher(tmp_path, env) as dispatcher:
        started = httpx.post(f"{dispatcher.base_url}/start?wait=started", json={}, timeout=60)
        assert started.status_code == 201, started.text
        assert httpx.delete(f"{dispatcher.base_url}/sessions/{started.json()['session_id']}", timeout=30).is_success
    assert mark.read_text().startswith("-m bot ")


def test_an_offer_to_a_session_whose_bot_failed_names_the_cause(tmp_path: Path) -> None:
    """A client that shows only the offer's answer (Pipecat's JS clients) learns why, not just that."""
    env = {"RESERVE_MAX_IDLE": "0", "BOT_FILE": str(REPO / "tests" / "bots" / "broken_no_bot.py")}
    with run_dispatcher(tmp_path, env) as dispatcher:
        started = httpx.post(f"{dispatcher.base_url}/start", json={}, timeout=60)
        assert started.status_code == 201, started.text
        session_id = started.json()["session_id"]
        offer = httpx.post(f"{dispatcher.base_url}/sessions/{session_id}/api/offer",
                           json={"sdp": "v=0", "type": "offer"}, timeout=60)
    assert offer.status_code == 409, offer.text
    message = offer.json()["error"]["message"]
    assert "has failed" in message and "defines no `bot`" in message, message


def test_an_edited_bot_file_is_what_the_next_session_runs_not_what_an_idle_bot_imported(tmp_path: Path) -> None:
    """An idle bot imported the file before the edit: it is retired, never claimed (a real dispatcher)."""
    project = tmp_path / "project"
    project.mkdir()
    bot_file = project / "bot.py"
    bot_file.write_text(GREETER.read_text())
    (project / "testbot_kit.py").write_text((GREETER.parent / "testbot_kit.py").read_text())
    env = {"RESERVE_MIN_IDLE": "1", "RESERVE_MAX_IDLE": "1", "BOT_FILE": str(bot_file)}
    with run_dispatcher(tmp_path, env) as dispatcher:
        wait_until(lambda: "connected (idle)" in dispatcher.log(), "an idle bot", timeout=90, detail=dispatcher.log)
        before = re.search(r"bot (rsv-[0-9a-f]+) connected \(idle\)", dispatcher.log())
        assert before is not None
        old_bot = before.group(1)
        (project / "prompts.py").write_text("GREETING = 'edited'\n")  # a module beside it counts too
        # Seen within the fingerprint's half second: the idle bot is retired as of an old image...
        wait_until(lambda: f"reserve bot {old_bot} retired (old_image)" in dispatcher.log(),
                   "the stale bot's retirement", timeout=60, detail=dispatcher.log)
        started = httpx.post(f"{dispatcher.base_url}/start?wait=started", json={}, timeout=90)
        assert started.status_code == 201, started.text
        log = dispatcher.log()
        httpx.delete(f"{dispatcher.base_url}/sessions/{started.json()['session_id']}", timeout=30)
    # ... and the session runs a bot that imported the edited files.
    assert f"claimed reserve bot {old_bot}" not in log


def test_a_dispatcher_without_the_bot_host_still_starts_and_serves_its_page() -> None:
    """The dispatcher's image has no `bot` package: its local checks and page must not need one."""
    code = ("import sys; sys.modules['bot'] = None\n"
            "from dispatcher.factory import configuration_problems\n"
            "from dispatcher.machines.local.provider import LocalMachines, LocalSettings\n"
            "from dispatcher.api.routers.page import page_text\n"
            "assert configuration_problems({}) == [], configuration_problems({})\n"
            "machines = LocalMachines(LocalSettings.from_env({}))\n"
            "assert (machines.bot_file, machines.bot_image) == (None, 'dev')\n"
            "assert 'bot-behaviour' in page_text(machines.bot_file)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
