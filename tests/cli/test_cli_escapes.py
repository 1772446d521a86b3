"""Finding: terminal escapes a bot put in its usage rows reached the admin's terminal raw through
`voicefleet usage --by model` and `voicefleet session ID`: an OSC 52 clipboard write, an OSC 8 link
whose text hides its URL, CSI sequences that clear the screen. Now the channel refuses usage names
with control characters (botchannel/usage.py), and the CLI prints every string through
`voicefleet.tables.printable` (tests/cli/test_artifacts_cli.py holds it alone, on a transcript).
A real `python -m dispatcher`, its stand-in bot in `escapes` mode, the admin running the real CLI."""

from __future__ import annotations

import csv
import io
import shlex
from pathlib import Path

import httpx
from click.testing import CliRunner, Result

from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_LOCAL_BOT_ENV
from tests.support.processes import run_dispatcher
from tests.support.waiting import wait_until
from voicefleet.main import voicefleet

ADMIN_KEY, CLIENT_KEY = "vf-admin-escapes-3d5f7a9c1e", "vf-acme-escapes-8b6d4f2a0c"
RAW = ("\x1b", "\x07", "\x9b")  # ESC, BEL and the one-byte CSI: what a terminal would run


def admin(url: str, *args: str) -> Result:
    env = {"VOICEFLEET_URL": url, "VOICEFLEET_ADMIN_KEY": ADMIN_KEY, "VOICEFLEET_API_KEY": None}
    return CliRunner().invoke(voicefleet, list(args), prog_name="voicefleet", env=env)


def test_escapes_a_bot_reports_never_reach_the_admins_terminal(tmp_path: Path) -> None:
    env = {**STANDIN_LOCAL_BOT_ENV, "LOCAL_BOT_COMMAND": shlex.join(STANDIN_BOT), "STANDIN_MODE": "escapes",
           "DISPATCHER_API_KEYS": f"acme:{CLIENT_KEY}", "DISPATCHER_ADMIN_KEYS": ADMIN_KEY, "RESERVE_MAX_IDLE": "0"}
    with run_dispatcher(tmp_path, env) as dispatcher:
        url = dispatcher.base_url
        started = httpx.post(f"{url}/start?wait=started", json={}, timeout=60,
                             headers={"Authorization": f"Bearer {CLIENT_KEY}"})
        assert started.status_code == 201, started.text
        session_id = started.json()["session_id"]

        def counted() -> bool:  # the bot reported, ended, and its session is in the usage
            result = admin(url, "usage", "--json")
            return result.exit_code == 0 and '"sessions": 1' in result.stdout

        wait_until(counted, "the bot's session in the usage", timeout=60, detail=dispatcher.log)
        outputs = {command: admin(url, *command.split()) for command in (
            "usage --by model", "usage --by model --csv", f"session {session_id}", "sessions")}
        for command, result in outputs.items():
            assert result.exit_code == 0, (command, result.output)
            assert not any(c in result.output for c in RAW), (command, repr(result.output))
        shown = outputs[f"session {session_id}"].stdout
        assert "its speech service refused\\x1b]52;c;cm0gLXJmIH4=\\x07" in shown  # the bot's error, shown as text
        # The rows with escapes were refused with their `ended` report; what the bot reported before it stays.
        rows = list(csv.DictReader(io.StringIO(outputs["usage --by model --csv"].stdout)))
        assert [row["model"] for row in rows] == ['llm:=HYPERLINK("https://evil.example","x")'], rows
