"""A bot file that sets up its own logging at import, as many of Pipecat's examples do, keeps it.

Under Pipecat's runner a bot file imports with loguru's default handler in place, id 0, and the
examples replace it (`logger.remove(0)`, then their own `logger.add(sys.stderr, …)`). voicefleet's
host hands the bot its own handler as id 0: the bot file imports, and its lines reach stderr, the
session's log, through the handler the bot added.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.bot.conftest import REPO, bot_env, unshare_network_prefix

# The shape of the examples' bot files: the logging set-up at module level, then the runner's entry
# point. The pipeline itself does not matter here; `--check` imports the file and runs `prewarm()`.
BOT_FILE = '''
import sys

from loguru import logger

from pipecat.runner.types import RunnerArguments

logger.remove(0)
logger.add(sys.stderr, level="DEBUG", format="own-format | {level} | {message}")

logger.debug("bot file imported with its own handler")


async def prewarm():
    logger.info("prewarm logged through the bot's handler")


async def bot(runner_args: RunnerArguments):
    logger.info("session started")
'''


def run_check(bot_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*unshare_network_prefix(), sys.executable, "-m", "bot", "--check"],
        cwd=REPO, env=bot_env(BOT_FILE=str(bot_file)), capture_output=True, text=True, timeout=60,
    )


def test_a_bot_file_that_replaces_handler_0_at_import_runs_and_its_lines_reach_stderr(tmp_path: Path) -> None:
    bot_file = tmp_path / "bot.py"
    bot_file.write_text(BOT_FILE, encoding="utf-8")
    result = run_check(bot_file)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "own-format | DEBUG | bot file imported with its own handler" in result.stderr, result.stderr[-2000:]
    assert "own-format | INFO | prewarm logged through the bot's handler" in result.stderr, result.stderr[-2000:]
    # Once replaced, voicefleet's handler writes nothing more: no line twice.
    assert result.stderr.count("prewarm logged through the bot's handler") == 1, result.stderr[-2000:]
