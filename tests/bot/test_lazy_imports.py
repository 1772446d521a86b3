"""Deferred imports: absent from start-up, still there when something uses them."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.bot.conftest import REPO, bot_env

PROGRAM = """
import json
from bot.lazy_imports import defer_unused_imports, materialized
defer_unused_imports()
import bot.webrtc_mode  # everything a webrtc session imports before `ready`
before = materialized()
import aiohttp
aiohttp.ClientTimeout(total=1)  # first use runs the module
print(json.dumps({"before": before, "after": materialized()}))
"""


def test_deferred_modules_are_not_run_at_start_up_but_work_when_used() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=REPO, env=bot_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["before"] == []
    assert "aiohttp" in report["after"]
