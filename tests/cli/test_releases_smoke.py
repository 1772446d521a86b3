"""`voicefleet releases smoke NAME` against a real `python -m dispatcher` whose stack-shaped `RELEASES`
lists a broken release (its `bot()` raises), the stable parrot and a new parrot entering at a canary:
the command calls the smoke session over real WebRTC as a caller does and prints the dispatcher's
verdict. The parrot passes (exit 0) and takes its canary share; the broken one fails with the bot's
own error (exit 1); a client key is refused with the way forward and no smoke starts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.releases import listed_releases, smoke_env
from voicefleet.main import voicefleet
from voicefleet.smoke import _call

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # a real dispatcher, real bots importing Pipecat

ADMIN_KEY, CLIENT_KEY = "vf-admin-smoke-8e1d4c7b2a90", "vf-client-smoke-3b6f0e9d1c57"
WAIT = "300"  # a bot's first import of Pipecat on a busy machine: a safety net, never what is checked
CANARY = 50
BOTS = Path(__file__).resolve().parents[1] / "bots"


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    """The smoke gate's stack, with one more release listed oldest, `crashes` (its machine exits at
    boot), and a smoke deadline far beyond the command's own wait (WAIT), so that a verdict in time is
    the dispatcher's decision from what it saw, never the deadline's."""
    crashes = {"name": "crashes", "images": {"*": str(BOTS / "crash_at_boot.py")}}
    env = {**smoke_env(CANARY, CLIENT_KEY, ADMIN_KEY), "RELEASE_SMOKE_DEADLINE_SECONDS": "3600"}
    stack = json.loads(env["RELEASES"])
    env["RELEASES"] = json.dumps({**stack, "releases": [crashes, *stack["releases"]]})
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), env) as running:
        yield running


def releases(dispatcher: DispatcherProcess) -> dict[str, dict[str, Any]]:
    return listed_releases(dispatcher.base_url, ADMIN_KEY)


def run(dispatcher: DispatcherProcess, *args: str, key: str) -> Result:
    env = {"VOICEFLEET_URL": dispatcher.base_url, "VOICEFLEET_ADMIN_KEY": key, "VOICEFLEET_ICE_LOOPBACK": "1"}
    result = CliRunner().invoke(voicefleet, ["releases", "smoke", *args, "--wait", WAIT],
                                prog_name="voicefleet", env=env)
    assert key not in result.output
    return result


def test_a_client_key_is_refused_and_no_smoke_starts(dispatcher: DispatcherProcess) -> None:
    result = run(dispatcher, "next", key=CLIENT_KEY)
    assert result.exit_code == 1
    assert result.stderr.startswith("voicefleet: admin_key_required (HTTP 403)")
    assert "VOICEFLEET_ADMIN_KEY holds a client API key" in result.stderr
    assert releases(dispatcher)["next"]["smoke"]["status"] == "pending"


def test_a_release_that_answers_its_caller_passes_and_takes_its_canary_share(dispatcher: DispatcherProcess) -> None:
    assert releases(dispatcher)["next"]["weight"] == 0
    result = run(dispatcher, "next", "--json", key=ADMIN_KEY)
    assert result.exit_code == 0, (result.output, dispatcher.log()[-3000:])
    printed = json.loads(result.stdout)
    after = releases(dispatcher)
    assert printed["smoke"]["status"] == "passed" == after["next"]["smoke"]["status"]
    assert printed["smoke"]["session_id"] == after["next"]["smoke"]["session_id"]
    assert printed["caller"]["first_audio_seconds"] > 0, printed
    assert (after["next"]["weight"], after["stable"]["weight"]) == (CANARY, 100 - CANARY)
    again = run(dispatcher, "next", key=ADMIN_KEY)  # one smoke per release: the way out is in the answer
    assert again.exit_code == 1 and again.stderr.startswith("voicefleet: smoke_already_passed (HTTP 409)")


def test_a_release_whose_bot_raises_fails_with_the_bots_own_error(dispatcher: DispatcherProcess) -> None:
    result = run(dispatcher, "broken", key=ADMIN_KEY)
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("smoke broken: failed: ") and "fails on purpose" in result.stdout
    smoke = releases(dispatcher)["broken"]
    assert smoke["smoke"]["session_id"] in result.stdout and smoke["weight"] == 0


def test_a_daily_smoke_session_is_handed_to_a_person_in_its_room(capsys: pytest.CaptureFixture[str]) -> None:
    """The command has no Daily client: a Daily session's room is printed for a person to join, and
    the verdict stays the dispatcher's, from the bot's reports (no WebRTC offer is attempted)."""
    heard = _call("http://127.0.0.1:9", None, {"session_id": "s", "room_url": "https://acme.daily.co/vf-s"}, None)
    assert heard == {"caller": "a person in the Daily room"}
    assert "join https://acme.daily.co/vf-s" in capsys.readouterr().err


def test_a_release_whose_machine_dies_at_boot_fails_at_once_with_the_providers_word(
        dispatcher: DispatcherProcess) -> None:
    """The verdict is the dispatcher's decision that the machine is over, as soon as it sees the exit:
    not the smoke's deadline (set far beyond the command's own wait, so only that decision can answer
    in time)."""
    result = run(dispatcher, "crashes", key=ADMIN_KEY)
    smoke = releases(dispatcher)["crashes"]
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("smoke crashes: failed: the machine failed before a caller heard the bot "
                                    "(exit code 1)"), result.stdout
    assert smoke["smoke"]["status"] == "failed" and smoke["weight"] == 0
