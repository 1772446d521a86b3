"""The test bots (tests/bots) are valid Pipecat: Pipecat's own development runner, `python bot.py`,
runs each of them over real WebRTC, and fails on the broken ones in the same places voicefleet's
host reports (tests/bot/test_user_bots.py). Nothing here imports voicefleet into the bot process."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

from tests.bot.conftest import REPO, SPEECH_WAV
from tests.bot.test_user_bots import SYNTAX_ERROR, first_loud_audio
from tests.support.audio import BOT_AUDIO_RMS
from tests.support.connect_until import connect_until
from tests.support.ports import free_port
from tests.support.webrtc_client import WebRTCClient

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

BOTS = REPO / "tests" / "bots"
START_TIMEOUT = 60.0


def user_env() -> dict[str, str]:
    """This environment without PYTHONPATH, as a user's shell runs `python bot.py`. The suite's may name
    the repository, whose `bot` package (voicefleet's host) the runner would import in place of a bot
    file: it looks for a module named `bot` before the files in the bot's folder."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}


@contextmanager
def pipecat_runner(bot_file: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`python bot.py -t webrtc` from the bot's folder, as Pipecat's docs run it; yields (process, offer URL)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, bot_file.name, "--host", "127.0.0.1", "--port", str(port), "-t", "webrtc"],
        cwd=bot_file.parent,
        env=user_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield process, f"http://127.0.0.1:{port}/api/offer"
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class OutputLines:
    """A process's output read as it comes (a thread per process), for a test to wait on a line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()

    def wait_for(self, text: str, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: text in "".join(self._lines) or not self._reader.is_alive(), timeout)

    def text(self) -> str:
        self._reader.join(15)  # the process has been stopped: the rest of its output up to EOF
        with self._changed:
            return "".join(self._lines)


def output(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.read()


@pytest.mark.parametrize("name", ["greeter", "body", "slow_import"])
async def test_pipecats_runner_runs_the_bots_that_speak_first(name: str) -> None:
    with pipecat_runner(BOTS / f"{name}.py") as (process, offer_url):
        assert process.poll() is None
        async with WebRTCClient(offer_url) as client:
            await first_loud_audio(client)


async def test_pipecats_runner_runs_the_echo_bot() -> None:
    with pipecat_runner(BOTS / "echo.py") as (_, offer_url):
        async with WebRTCClient(offer_url) as client:
            result = await client.talk(SPEECH_WAV, listen_seconds=3.0)
    assert result.segments and max(s.peak_rms for s in result.segments) > BOT_AUDIO_RMS


@pytest.mark.parametrize(
    ("name", "expected"),
    [("syntax_error", "SyntaxError"), ("broken_missing_module", "ModuleNotFoundError")],
)
def test_pipecats_runner_cannot_start_the_bots_that_cannot_load(tmp_path: Path, name: str, expected: str) -> None:
    path = BOTS / f"{name}.py"
    if name == "syntax_error":
        path = tmp_path / "bot.py"
        path.write_text(SYNTAX_ERROR)
    with pipecat_runner(path) as (process, _):
        assert process.wait(START_TIMEOUT) != 0
        assert expected in output(process)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("broken_raises", "BotConfigurationError"),
        ("broken_returns", ""),
        ("broken_no_bot", "Could not find 'bot' function"),
    ],
)
async def test_pipecats_runner_answers_the_bots_that_fail_in_their_session(
    tmp_path: Path, name: str, expected: str
) -> None:
    # Each alone in its folder: the runner falls back to any other file there with a `bot`.
    for file in (f"{name}.py", "testbot_kit.py"):
        shutil.copy(BOTS / file, tmp_path / file)
    with pipecat_runner(tmp_path / f"{name}.py") as (process, offer_url):
        said = OutputLines(process)
        client = WebRTCClient(offer_url, connect_timeout=5)
        try:  # the offer answered: the runner loaded the file and called bot()
            await connect_until(client, lambda: client.pc_id is not None)
        except TimeoutError:
            pass  # nothing runs the peer connection on the bot's side
        finally:
            await client.close()
        assert client.pc_id is not None
        # The runner logs the bot's end when it gets to it: on a busy machine, seconds later.
        await asyncio.to_thread(said.wait_for, expected, START_TIMEOUT)
    assert expected in said.text()
