"""`voicefleet eval` over a carrier's media stream: the booking line run by a real `python -m dispatcher`
takes a Twilio Media Streams call from the load test's phone caller (and the same call as Exotel
streams it: 16-bit PCM, not μ-law), the party's size keyed in as DTMF, the bot's words read from the
session's transcript, each call marked as an eval's and pinned as a web eval's is; no call is left
running. Every carrier's stream (Telnyx's and Plivo's too) is read as the bot's Pipecat and the
dispatcher read it, round trip, in test_eval_carrier_frames.py. A party keyed in that the scenario
does not want fails at its turn on the line's own answers in test_eval_fault_verdicts.py (the keys
reach the bot in the `4#` call here); an unpinned eval runs the stable release in
test_eval_dispatcher.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_eval_dispatcher import evals_at_once, evals_listed, running, silence_after_a_turn
from tests.phone.conftest import phone_env
from tests.support.eval_verdicts import skip_if_inconclusive
from tests.support.examples import BOOKING
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # a real bot hearing real speech on a phone line

PHONE_SUITE = BOOKING / "scenarios" / "phone"
KEYPAD = PHONE_SUITE / "party_size_on_the_keypad.toml"


def over(folder: Path, carrier: str) -> Path:
    """The keypad scenario placed as `carrier` streams it, named after it."""
    name = f"keypad over {carrier}"
    text = KEYPAD.read_text().replace('transport = "twilio"', f'transport = "{carrier}"')
    text = text.replace('name = "party size on the keypad"', f'name = "{name}"')
    assert f'transport = "{carrier}"' in text
    path = folder / f"{name.replace(' ', '_')}.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    # Two releases of the same line, all the weight on `stable`: a session of `next` was pinned there.
    bot = BOOKING / "bot.py"
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "BOT_RELEASES": f"stable={bot},next={bot}",
           "RELEASE_WEIGHTS": "stable=100", "RECORDING": "off", "RECORDING_TRANSCRIPT": "on",
           "RECORDING_DESTINATION": str(tmp_path_factory.mktemp("recordings")), "RESERVE_MAX_IDLE": "0"}
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), env) as process:
        yield process


def test_the_keypad_scenario_passes_over_a_twilio_stream_on_the_release_it_names(dispatcher: DispatcherProcess,
                                                                                tmp_path: Path) -> None:
    """Three calls, one run of the command with `--release next` (a process of its own):
    - the keypad scenario passes over a Twilio stream, timed by the caller and by the bot host (from the
      session's end), on the release the run names: its call token carries the pin and the eval mark
      to the session the call opens;
    - the same call as Exotel streams it (its start, 16-bit PCM audio, its `dtmf` events, its hang-up)
      passes every turn too, its bot's Pipecat reading it as Exotel's;
    - 2.5 s of digital silence on the line sends no loud frame: the turn is timed from its own end, so
      the previous turn's answer is no reply to it."""
    folder = tmp_path / "next"
    folder.mkdir()
    (folder / KEYPAD.name).write_text(KEYPAD.read_text())
    silence_after_a_turn(folder, "twilio")
    over(folder, "exotel")
    (pinned,) = evals_at_once(dispatcher.base_url, [str(folder), "--concurrency", "3", "--release", "next", "--json"])
    summary = json.loads(pinned.stdout)
    # Each call on the release the run names, marked as an eval's, none left running: whatever the verdict.
    assert summary["release"] == "next"
    assert set(evals_listed(dispatcher, pinned).values()) == {"next"}
    assert running(dispatcher) == []
    scenarios = {s["scenario"]: s for s in summary["scenarios"]}
    exotel = scenarios["keypad over exotel"]["sessions"][0]  # its bot read the call's first messages as Exotel's
    assert re.search(rf"\[{exotel}\].*telephony provider: exotel\b", dispatcher.log()), exotel
    skip_if_inconclusive(pinned)
    assert pinned.exit_code == 0, pinned.output
    assert {name: s["passed"] for name, s in scenarios.items()} == {
        "party size on the keypad": 1, "silence after a turn": 1, "keypad over exotel": 1}, pinned.output
    keypad = scenarios["party size on the keypad"]
    assert keypad["turn_latency_ms"]["p50"] and keypad["bot_turn_latency_ms"]["p50"], keypad
