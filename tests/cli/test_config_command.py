"""`voicefleet config` runs the dispatcher's own reading of the configuration, in the checkout, with
the caller's environment, and says so plainly when run elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-c", "from voicefleet.main import main; main()"]


def run(*arguments: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    return subprocess.run([*COMMAND, "config", *arguments], cwd=cwd, env={**clean, **env}, capture_output=True,
                          text=True, timeout=120, check=False)


def test_check_explain_and_diff_read_the_environment() -> None:
    done = run("check", RESERVE_MAX_IDEL="3")
    assert (done.returncode, done.stdout) == (1, "RESERVE_MAX_IDEL is no setting: did you mean RESERVE_MAX_IDLE?\n")
    done = run("explain", "PORT", PORT="9000")
    assert done.returncode == 0 and "value: 9000 (from the environment)" in done.stdout
    done = run("diff", VOICEFLEET_PROFILE="prod", TURN_SHARED_SECRET="s" * 20)
    assert done.returncode == 0 and "LOG_FORMAT=json  (profile prod)" in done.stdout
    assert "TURN_SHARED_SECRET=(a secret, set)  (environment)" in done.stdout and "sssss" not in done.stdout


def test_outside_a_checkout_it_says_where_to_run_it(tmp_path: Path) -> None:
    done = run("check", cwd=tmp_path)
    assert done.returncode == 1 and "run it in the voicefleet checkout" in done.stderr
