"""`voicefleet eval` against a real `python -m dispatcher` whose releases are the booking line and a
copy of it that waits to be spoken to: the line's own suite passes and the docs' promises hold; no
call is left running. Where the other claims are made: a planted wrong answer fails its scenario at
its turn through the same eval path in test_eval_gate_dispatcher.py (`releases smoke --suite`); the
other faults' verdicts on their recorded turns in test_eval_fault_verdicts.py; the docs' first example
on the words of the suite's own "book a table" call in test_eval_docs_example.py; an answer whose
second sentence comes seconds late heard whole where that is decided, test_eval_answer_end.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from tests.fakes.openai_chat import FakeOpenAIChat
from tests.fakes.server import serve
from tests.support.eval_verdicts import skip_if_inconclusive
from tests.support.examples import BOOKING, planted
from tests.support.processes import DispatcherProcess, run_dispatcher
from voicefleet.evals.call import GREETING_WAIT
from voicefleet.evals.verdict import BOT_BEHIND_VARIABLE, INCONCLUSIVE
from voicefleet.main import voicefleet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # real bots hearing real speech over WebRTC

SUITE = BOOKING / "scenarios"
UNSET = ("VOICEFLEET_URL", "VOICEFLEET_API_KEY", "VOICEFLEET_ADMIN_KEY")  # the runs' own: no deployment of the user's
EVAL_TIMEOUT = 300  # a safety net for one run of a scenario on a loaded machine, never what a test checks
AGAIN = 2  # times a scenario whose call had no verdict (inconclusive) is placed again, alone


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    root = tmp_path_factory.mktemp("faults")
    releases = {
        "stable": BOOKING / "bot.py",
        # No greeting: it waits to be spoken to.
        "quiet": planted(root, "quiet", "bot.py", '        transport.add_event_handler("on_client_connected", greet)\n',
                         ""),
    }
    # Two warm bots of the stable release, as a deployment keeps them: the suite's calls (two at once)
    # meet a bot ready, not one importing its pipeline; each taken is replaced while the calls talk.
    warm = {"RESERVE_MIN_IDLE": "2", "RESERVE_MAX_IDLE": "2", "RESERVE_BUFFER": "0", "RESERVE_BURST": "0"}
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), {**with_releases(releases), **warm}) as running:
        yield running


def with_releases(releases: dict[str, Path]) -> dict[str, str]:
    """A local dispatcher's environment serving these bots as its releases, all the weight on `stable`."""
    return {"BOT_RELEASES": ",".join(f"{name}={path}" for name, path in releases.items()),
            "RELEASE_WEIGHTS": "stable=100", "RESERVE_MAX_IDLE": "0"}


def run_eval(url: str, *args: str) -> Result:
    return CliRunner().invoke(voicefleet, ["eval", *args, "--url", url], prog_name="voicefleet",
                              env=dict.fromkeys(UNSET))


@dataclass(frozen=True)
class EvalRun:
    """What one `voicefleet eval` process gave: as much of click's `Result` as these tests read."""

    exit_code: int
    stdout: str
    output: str


def evals_at_once(url: str, *runs: list[str], bot_behind: float | None = None,
                  env: dict[str, str] | None = None) -> list[EvalRun]:
    """Each of `runs` (the arguments after `voicefleet eval`) as a process of its own, all at once:
    click's CliRunner swaps the process's own stdout, so two cannot run in one process. `bot_behind`:
    the runs' VOICEFLEET_EVAL_BOT_BEHIND; `env`: more of their environment."""
    env = {**{name: value for name, value in os.environ.items() if name not in UNSET}, **(env or {})}
    if bot_behind is not None:
        env[BOT_BEHIND_VARIABLE] = str(bot_behind)
    command = "from voicefleet.main import voicefleet; voicefleet(prog_name='voicefleet')"
    # Each run writes to files, not pipes: a run whose pipe waits to be read (after another run's end)
    # would block once it is full, and its calls with it.
    outputs = [(tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")) for _ in runs]
    processes = [subprocess.Popen([sys.executable, "-c", command, "eval", *run, "--url", url], env=env,
                                  stdout=stdout, stderr=stderr, text=True)
                 for run, (stdout, stderr) in zip(runs, outputs, strict=True)]
    done = []
    try:
        for process, (stdout, stderr) in zip(processes, outputs, strict=True):
            process.wait(timeout=EVAL_TIMEOUT)
            stdout.seek(0)
            stderr.seek(0)
            out = stdout.read()
            done.append(EvalRun(process.returncode, out, out + stderr.read()))
    finally:
        for process, files in zip(processes, outputs, strict=True):
            process.kill()  # a run past its bound (or a failure reading another) leaves no process behind
            process.wait()
            for file in files:
                file.close()
    return done


def silence_after_a_turn(folder: Path, transport: str = "webrtc") -> Path:
    """A scenario whose second turn is 2.5 s of digital silence (a 16 kHz WAV of zeros beside it) that
    the bot must not answer, after a first turn it does answer."""
    with wave.open(str(folder / "silence.wav"), "wb") as silence:
        silence.setnchannels(1)
        silence.setsampwidth(2)
        silence.setframerate(16000)
        silence.writeframes(b"\0\0" * 40000)
    path = folder / "silence.toml"
    path.write_text(f'name = "silence after a turn"\ntransport = "{transport}"\n[[turns]]\n'
                    'say = "I want to make a booking"\nexpect = { contains = ["how many people"] }\n'
                    '[[turns]]\nwav = "silence.wav"\nlisten_ms = 4000\nexpect = { silent = true }\n')
    return path


HOST_REASONS = r"fell behind real time|connection was lost"  # the command's reasons a call has no verdict


def noted_again(placed_again: list[str]) -> None:
    """How often the test placed a call again for want of a verdict, as a warning in the run's summary
    (JUnit's xunit2 takes no test properties): a busy host's cost is seen, never hidden."""
    if placed_again:
        warnings.warn(f"{len(placed_again)} run(s) placed again, the host leaving them without a verdict: "
                      + "; ".join(placed_again), stacklevel=2)


def callers_behind(result: Result | EvalRun) -> set[str]:
    """The sessions whose caller fell behind real time (its own machine busy): their verdict is not the bot's."""
    return set((json.loads(result.stdout)["inconclusive"] or {}).get("sessions", []))


def running(dispatcher: DispatcherProcess) -> list[str]:
    listed = httpx.get(f"{dispatcher.base_url}/sessions", params={"status": "active"}, timeout=30).json()
    return [s["session_id"] for s in listed.get("sessions", []) if s.get("status") not in ("ended", "failed")]


def evals_listed(dispatcher: DispatcherProcess, result: Result | EvalRun) -> dict[str, object]:
    """Each of the result's sessions as `GET /sessions?eval=true` lists it: its release, by id."""
    listed = httpx.get(f"{dispatcher.base_url}/sessions", params={"eval": "true", "limit": 100}, timeout=30).json()
    releases = {s["session_id"]: s["release"] for s in listed["sessions"] if s["eval"] is True}
    ids = [i for scenario in json.loads(result.stdout)["scenarios"] for i in scenario["sessions"]]
    return {i: releases.get(i) for i in ids}


def test_the_booking_lines_suite_passes_and_writes_junit(dispatcher: DispatcherProcess, tmp_path: Path) -> None:
    report = tmp_path / "eval.xml"
    result = run_eval(dispatcher.base_url, str(SUITE), "--junit", str(report), "--json")
    summary = json.loads(result.stdout)
    if result.exit_code == INCONCLUSIVE:
        assert re.search(r'<testsuite name="voicefleet eval" tests="\d+" failures="0"', report.read_text())
    skip_if_inconclusive(result)
    assert result.exit_code == 0, result.output
    assert summary["passed"] == summary["runs"] == len(list(SUITE.glob("*.toml"))), summary
    assert summary["release"] == "stable"
    assert all(s["turn_latency_ms"]["p50"] for s in summary["scenarios"]), summary
    assert re.search(rf'<testsuite name="voicefleet eval" tests="{summary["runs"]}" failures="0"', report.read_text())
    assert set(evals_listed(dispatcher, result).values()) == {"stable"}  # each call an eval's, on its release


def judged(messages: list[dict[str, object]]) -> str:
    """The fake judge's verdict, from what the bot said: a rubric on the closing time passes where it
    named eleven at night, any other (the call's, on Sundays) where it said "Sunday"."""
    call = str(messages[-1]["content"]).split("Conversation:", 1)[1].lower()
    rubric = str(messages[-1]["content"]).split("\n", 1)[0]
    passed = "eleven at night" in call if "closing time" in rubric else "sunday" in call
    return json.dumps({"pass": passed, "reason": "it named eleven at night" if passed else "no word of Sunday"})


def test_the_docs_promises_of_one_call_each_hold_on_calls_placed_at_once(dispatcher: DispatcherProcess,
                                                                         tmp_path: Path) -> None:
    """Three calls, two runs of the command at once (each a process of its own), each call a promise
    of docs/evals.md on a bot of its own:
    - 2.5 s of digital silence after an answered turn sends no loud block, so the caller's last speech
      is the previous turn's, and that turn's answer is no reply to the silence: the silent turn passes;
    - the optional LLM judge (an OpenAI-compatible fake answering from what the bot said): the turn's
      rubric it passes leaves the call passing, the call's rubric it fails fails it, with its reason,
      which the command's last line names as the first failure;
    - a bot that waits to be spoken to is spoken to once it has said nothing for
      `--speak-first-after`, not after the whole wait a greeting is given (GREETING_WAIT)."""
    stable = tmp_path / "stable"
    stable.mkdir()
    silence_after_a_turn(stable)
    (stable / "hours.toml").write_text(
        'name = "hours"\ncall = { rubric = "Does the bot say it is open on Sundays?" }\n'
        '[[turns]]\nsay = "What are your opening hours"\n'
        'expect = { contains = ["open every day"], rubric = "Does the bot name a closing time?" }\n')
    first = tmp_path / "first.toml"
    first.write_text('name = "caller first"\n[[turns]]\nsay = "What are your opening hours"\n'
                     'expect = { contains = ["open every day"] }\n')
    judge = FakeOpenAIChat("sk-judge", answer=judged)
    with serve(judge, "/v1") as server:
        options = ["--judge-url", server.url, "--judge-model", "judge-1", "--json"]
        key = {"VOICEFLEET_JUDGE_API_KEY": "sk-judge"}
        docs, quiet = evals_at_once(
            dispatcher.base_url, [str(stable), "--concurrency", "2", *options],
            [str(first), "--release", "quiet", "--speak-first-after", "2", "--json"], env=key)
        # A call whose bot's host, or the way back to its caller, fell behind real time (CI beside a hog held
        # one 5.5 s; three calls in one caller at a load of 8 heard their answers 4-13 s late), whose caller
        # could not send its speech in time (7.4 s behind at a load of 13), or whose connection a machine too
        # busy to answer ICE consent checks lost (a load of 16 on 2 cores), has no verdict on the bot, which
        # the run says, with why: it proves none of its promises, so its scenario is placed again, alone.
        runs = [(docs, 0)]  # with what the judge had been asked before each run
        placed_again: list[str] = []
        for again in range(1, 1 + AGAIN):
            unjudged = [s for s in json.loads(runs[-1][0].stdout)["scenarios"] if s["inconclusive"]
                        or any(f["session_id"] in callers_behind(runs[-1][0]) for f in s["failures"])]
            assert all(re.search(HOST_REASONS, c["reason"]) for s in unjudged for c in s["inconclusive"]), \
                runs[-1][0].output
            if not unjudged:
                break
            placed_again += [f"{s['scenario']}: {(s['inconclusive'] or s['failures'])[0]}" for s in unjudged]
            alone = tmp_path / f"again{again}"
            alone.mkdir()
            for file in [*(Path(s["source"]) for s in unjudged), stable / "silence.wav"]:
                (alone / file.name).write_bytes(file.read_bytes())
            asked_before = len(judge.calls)
            (retried,) = evals_at_once(dispatcher.base_url, [str(alone), *options], env=key)
            runs.append((retried, asked_before))
    # Each scenario's verdict from the last run that placed it; what the judge was asked in that run.
    verdicts = {s["scenario"]: (s, run, asked) for run, asked in runs for s in json.loads(run.stdout)["scenarios"]}
    assert {name: s["passed"] for name, (s, _, _) in verdicts.items()} == {
        "silence after a turn": 1, "hours": 0}, [run.output for run, _ in runs]
    hours, judged_in, asked_from = verdicts["hours"]
    assert judged_in.exit_code == 1, judged_in.output  # the call's rubric failed, and nothing else
    sundays = "rubric 'Does the bot say it is open on Sundays?': no word of Sunday"
    assert [f["failure"] for f in hours["failures"]] == [sundays], judged_in.output
    assert f"calls failed; the first: hours: {sundays}" in judged_in.output  # the command's last line
    assert all(not s["failures"] for name, (s, _, _) in verdicts.items() if name != "hours"), judged_in.output
    asked = [call.json()["messages"][-1]["content"] for call in judge.calls[asked_from:]]
    assert len(asked) == 2 and "bot: We are open every day" in asked[0], asked  # the turn's, then the call's
    assert quiet.exit_code == 0, quiet.output
    phases = json.loads(quiet.stdout)["scenarios"][0]["timings"][0]["phases"]
    assert phases["greeting_wait"] < GREETING_WAIT, phases
    assert running(dispatcher) == []
    noted_again(placed_again)
