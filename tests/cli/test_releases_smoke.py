"""`voicefleet releases smoke NAME`: the smoke routes' stand-in (tests/cli/smoke_api.py) in front of a
real dispatcher whose releases run the parrot; the command calls the release's session over real
WebRTC, and prints the verdict the session's own reports earned, with exit 0; a client key is
refused with the way forward and no session started; a release whose bot fails fails, exit 1."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from cli.main import voicefleet
from tests.cli.smoke_api import ADMIN_KEY, CLIENT_KEY, SmokeRoutes, handler
from tests.support.examples import PARROT
from tests.support.processes import run_dispatcher
from tests.support.threaded_http import serving

pytestmark = pytest.mark.slow  # a real parrot bot, real WebRTC


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SmokeRoutes]]:
    bot = PARROT / "bot.py"
    broken = tmp_path_factory.mktemp("broken") / "bot.py"
    broken.write_text("async def bot(runner_args):\n    raise RuntimeError('this release is broken')\n")
    env = {"BOT_RELEASES": f"stable={bot},next={bot},broken={broken}", "DISPATCHER_API_KEYS": CLIENT_KEY,
           "DISPATCHER_ADMIN_KEYS": ADMIN_KEY, "RESERVE_MAX_IDLE": "0"}
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), env) as dispatcher:
        smoke_routes = SmokeRoutes(dispatcher.base_url)
        with serving(handler(smoke_routes)) as url:
            yield url, smoke_routes


def run(url: str, *args: str, key: str) -> Result:
    result = CliRunner().invoke(voicefleet, ["releases", "smoke", *args], prog_name="voicefleet",
                                env={"VOICEFLEET_URL": url, "VOICEFLEET_ADMIN_KEY": key})
    assert key not in result.output
    return result


def test_a_release_that_answers_its_caller_passes(routes: tuple[str, SmokeRoutes]) -> None:
    url, smoke_routes = routes
    result = run(url, "next", "--json", key=ADMIN_KEY)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    session_id = smoke_routes.smokes["next"]["session_id"]
    assert printed["smoke"]["status"] == "passed" and printed["smoke"]["session_id"] == session_id
    assert printed["caller"]["first_audio_seconds"] > 0 and printed["caller"]["reply_seconds"] > 0
    events = [e["event"] for e in smoke_routes.real.get(f"/sessions/{session_id}/timeline").json()["events"]]
    assert {"requested", "ready", "joined", "first_audio", "ended"} <= set(events)
    assert [e["release"] for e in smoke_routes.real.get(f"/sessions/{session_id}/timeline").json()["events"]
            if e["event"] == "requested"] == ["next"]


def test_a_client_key_is_refused_and_no_session_starts(routes: tuple[str, SmokeRoutes]) -> None:
    url, smoke_routes = routes
    before = dict(smoke_routes.smokes)
    result = run(url, "stable", key=CLIENT_KEY)
    assert result.exit_code == 1
    assert result.stderr.startswith("voicefleet: admin_key_required (HTTP 403)")
    assert "VOICEFLEET_ADMIN_KEY holds a client API key" in result.stderr
    assert smoke_routes.smokes == before


def test_a_release_whose_bot_fails_fails_with_its_reason(routes: tuple[str, SmokeRoutes]) -> None:
    url, smoke_routes = routes
    result = run(url, "broken", key=ADMIN_KEY)
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("smoke broken: failed: ")
    assert smoke_routes.smokes["broken"]["session_id"] in result.stdout
