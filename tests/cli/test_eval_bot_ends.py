"""A bot that hangs up or crashes mid-call is a failed turn with its reason, never a crash of the tool:
`voicefleet eval` against a real `python -m dispatcher` whose releases are the booking line, a copy
that ends the call after its first answer (on WebRTC and on a Plivo stream) and a copy that raises 3 s
into the call (on WebRTC); each prints its table, writes its JUnit file and exits 1, with no traceback
and no call left running. Ctrl-C inside a call of a copy that hears the caller and never answers still
prints the table and writes the JUnit file.

Where the rest is checked: a crash's reason is read from its session by code the phone caller shares
(evals/call_end.py: test_eval_call_end.py, in-process), a bot-ended phone call end to end is the
hangup's here; `releases smoke --suite` of a failing release prints the suite's table, exits 1 and
records its 0/1 verdict in test_eval_gate_dispatcher.py.

The evals run as the user runs them, each a `voicefleet eval` process of its own (all three at once:
they are independent), so that what the process prints on its way out is read too: a library task of
the caller that failed after the call ended is printed by asyncio as a traceback under a correct
verdict, which a run inside the test's own process never shows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_eval_dispatcher import EvalRun, evals_at_once, running, with_releases
from tests.phone.conftest import phone_env
from tests.support.examples import BOOKING, planted
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.terminal import from_a_terminal

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # real bots hearing real speech

TWO_TURNS = """name = "two turns"
{transport}
[[turns]]
say = "I want to make a booking"
expect = {{ contains = ["how many people"] }}

[[turns]]
{second}
expect = {{ contains = ["what time"] }}
"""
# A call that cannot end by itself: the bot hears the caller's turn, writes it down (the test's sign that
# the call is under way) and never answers, while the caller waits two minutes for that answer.
HELD_CALL = """name = "held call"
[[turns]]
say = "I want to make a booking"
listen_ms = 120000
expect = { contains = ["how many people"] }
"""
CRASH_LATER = ("    await runner.run()\n",
               "    async def crash() -> None:\n"
               "        await __import__('asyncio').sleep(3.0)\n"
               "        raise RuntimeError('the booking system is down')\n"
               "    await __import__('asyncio').gather(runner.run(), crash())\n")


@pytest.fixture(scope="module")
def heard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the mute release writes down the first thing it hears."""
    return tmp_path_factory.mktemp("mute") / "heard.txt"


def hangs_up_after_its_first_answer(root: Path) -> Path:
    """The booking line whose every answer ends the call once it is spoken, as a goodbye does, and which
    hears nothing after it: a caller's next turn that reaches the bot before its end has gone through the
    pipeline (a busy host's) is not answered, so the call fails at that turn however the two race."""
    bot = planted(root, "hangup", "responder.py", "        if reply.ends_call:\n",
                  "        if True:\n            self.ended = True\n")
    responder = bot.parent / "responder.py"
    hears = "        if isinstance(frame, LLMContextFrame):\n"
    source = responder.read_text()
    assert hears in source, "responder.py no longer holds the line the hangup fault's deafness replaces"
    responder.write_text(source.replace(
        hears, "        if isinstance(frame, LLMContextFrame) and not getattr(self, 'ended', False):\n"))
    return bot


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory, heard: Path) -> Iterator[DispatcherProcess]:
    root = tmp_path_factory.mktemp("ends")
    releases = with_releases({
        "stable": BOOKING / "bot.py",
        "hangup": hangs_up_after_its_first_answer(root),
        "crash": planted(root, "crash", "bot.py", *CRASH_LATER),
        "mute": planted(root, "mute", "responder.py",
                        "            await self._answer(self.flow.reply(_last_user_text(frame.context)))\n",
                        f"            __import__('pathlib').Path({str(heard)!r}).write_text(\n"
                        "                _last_user_text(frame.context))\n"),
    })
    env = {**phone_env(tmp_path_factory.mktemp("calls")), **releases, "BOT_FILE": str(BOOKING / "bot.py"),
           "RECORDING": "off", "RECORDING_TRANSCRIPT": "on",
           "RECORDING_DESTINATION": str(tmp_path_factory.mktemp("recordings"))}
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), env) as process:
        yield process


def scenario(folder: Path, *, phone: bool = False) -> Path:
    path = folder / "two_turns.toml"
    path.write_text(TWO_TURNS.format(transport='transport = "plivo"' if phone else "",
                                     second='dtmf = "4#"' if phone else 'say = "For four people"'))
    return path


# What asyncio prints of a task's error nobody awaited, and of any other uncaught exception.
TRACEBACKS = ("Traceback", "exception was never retrieved")


def reported(result: EvalRun, junit: Path) -> str:
    """The run's first failure, as its table and its JUnit file both say it; the run ended as a run does,
    printing no traceback (an EvalRun's output holds its process's stderr)."""
    assert result.exit_code == 1, result.output
    assert not any(sign in result.output for sign in TRACEBACKS), result.output
    assert "SCENARIO" in result.stdout and "two turns" in result.stdout, result.stdout  # the table
    failure = result.stdout.split("two turns", 1)[1].split("\n", 1)[0]
    assert failure.strip() and failure.strip().split("  ")[-1].strip() in junit.read_text(), junit.read_text()
    return failure


@pytest.fixture(scope="module")
def evals(dispatcher: DispatcherProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[EvalRun, Path]]:
    """The hangup release's call on WebRTC and on a Plivo stream, the crash release's on WebRTC, each a
    `voicefleet eval` process, all at once: its run and its JUnit file, by name ("hangup", "crash",
    "hangup by phone")."""
    web, phone = scenario(tmp_path_factory.mktemp("web")), scenario(tmp_path_factory.mktemp("phone"), phone=True)
    folder = tmp_path_factory.mktemp("junit")
    cases = {f"{release}{by}": (release, path, folder / f"{release}{by}.xml".replace(" ", "_"))
             for release, by, path in (("hangup", "", web), ("crash", "", web), ("hangup", " by phone", phone))}
    runs = evals_at_once(dispatcher.base_url, *([str(path), "--release", release, "--junit", str(junit)]
                                                for release, path, junit in cases.values()))
    assert running(dispatcher) == []
    return {name: (run, junit) for (name, (_, _, junit)), run in zip(cases.items(), runs, strict=True)}


def test_a_bot_that_hangs_up_fails_the_turn_it_hung_up_on(evals: dict[str, tuple[EvalRun, Path]]) -> None:
    result, junit = evals["hangup"]
    said = "turn 2 ('For four people'): the bot closed its connection at turn 2"
    assert said in reported(result, junit), result.output


def test_a_bot_that_crashes_fails_with_its_sessions_error(evals: dict[str, tuple[EvalRun, Path]]) -> None:
    result, junit = evals["crash"]
    failure = reported(result, junit)
    assert "the bot's session failed: " in failure and "the booking system is down" in failure, result.output


def test_a_bot_that_hangs_up_before_a_keypad_turn_fails_that_turn(evals: dict[str, tuple[EvalRun, Path]]) -> None:
    result, junit = evals["hangup by phone"]
    assert "turn 2 ('keys 4#'): the bot ended the call at turn 2" in reported(result, junit), result.output


def test_ctrl_c_still_writes_the_table_and_junit(dispatcher: DispatcherProcess, heard: Path,
                                                 tmp_path: Path) -> None:
    """SIGINT inside a call that cannot end by itself (the mute release hears the caller and never answers,
    the caller waits two minutes for it): the call is stopped, reported as interrupted, and the run's
    report written before the command exits. The signal is sent once the bot has written down the
    caller's words, so the call is under way, whatever the machine's load."""
    junit, held = tmp_path / "eval.xml", tmp_path / "held_call.toml"
    held.write_text(HELD_CALL)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for name in ("VOICEFLEET_URL", "VOICEFLEET_API_KEY", "VOICEFLEET_ADMIN_KEY"):
        env.pop(name, None)
    command = [sys.executable, "-c", "from voicefleet.main import main; main()", "eval", str(held),
               "--release", "mute", "--url", dispatcher.base_url, "--junit", str(junit)]
    heard.unlink(missing_ok=True)
    # As a terminal starts it: a suite started as a background job would have it ignore the SIGINT.
    with subprocess.Popen(from_a_terminal(command), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as process:
        try:
            deadline = time.monotonic() + 150  # for the call to begin; its listening starts after the turn
            while not heard.exists():
                assert process.poll() is None and time.monotonic() < deadline, process.communicate()
                time.sleep(0.2)
            assert process.poll() is None, process.communicate()  # the call cannot have ended by itself
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 130, (out, err)
    assert "Traceback" not in err and "held call" in out and "interrupted" in out, (out, err)
    assert 'failures="1"' in junit.read_text() and "interrupted" in junit.read_text()
    assert running(dispatcher) == []
