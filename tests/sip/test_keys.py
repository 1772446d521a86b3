"""A key the caller presses (RFC 2833 telephone-events) reaches the bot as Pipecat's InputDTMFFrame,
through the edge's stream (tests/sip/keypad_bot.py writes down what it gets): those of `voicefleet eval`'s own SIP
caller, which sends them as a trunk does (RFC 4733), on the one call that makes the claim end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.phone.conftest import phone_env
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.support.processes import DispatcherProcess, run_dispatcher
from voicefleet.main import voicefleet

pytestmark = pytest.mark.slow  # a real dispatcher, the edge and a bot process importing Pipecat

KEYPAD_BOT = Path(__file__).with_name("keypad_bot.py")


@pytest.fixture(scope="module")
def keys_seen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def keypad_dispatcher(keys_seen: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    env = {**phone_env(keys_seen), "BOT_FILE": str(KEYPAD_BOT), "RESERVE_MIN_IDLE": "0"}
    with run_dispatcher(tmp_path_factory.mktemp("sip-keypad-dispatcher"), env) as dispatcher:
        yield dispatcher


@pytest.fixture(scope="module")
def keypad_edge(keypad_dispatcher: DispatcherProcess, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[EdgeProcess]:
    with run_edge(keypad_dispatcher, tmp_path_factory.mktemp("sip-keypad-edge")) as edge:
        yield edge


def test_an_eval_over_sip_presses_keys_that_reach_the_bot_of_the_session_the_edge_named(
        keypad_edge: EdgeProcess, keypad_dispatcher: DispatcherProcess, keys_seen: Path, tmp_path: Path) -> None:
    """`voicefleet eval` with two `transport = "sip"` scenarios, one pressing keys (RFC 4733 from the
    command's own SIP caller): both pass, and the keys are written down by the bot of the session the
    edge's 200 OK named; each session is marked an eval's (the caller's X-Voicefleet-Eval token)."""
    uri = f"sip:{NUMBER}@127.0.0.1:{keypad_edge.sip_port}"
    (tmp_path / "keys.toml").write_text(f'name = "keys"\ntransport = "sip"\nsip_uri = "{uri}"\n'
                                        '[[turns]]\ndtmf = "12#"\nlisten_ms = 2000\nexpect = { silent = true }\n')
    (tmp_path / "words.toml").write_text('name = "words"\ntransport = "sip"\n[[turns]]\nsay = "Hello there"\n'
                                         'listen_ms = 2000\nexpect = { silent = true }\n')  # its URI: --sip-uri
    before = set(keys_seen.glob("*.keys"))
    result = CliRunner().invoke(voicefleet, ["eval", str(tmp_path), "--url", keypad_dispatcher.base_url, "--sip-uri",
                                             uri, "--json"], prog_name="voicefleet",
                                env={"VOICEFLEET_URL": None, "VOICEFLEET_API_KEY": None, "VOICEFLEET_ADMIN_KEY": None})
    assert result.exit_code == 0, f"{result.output}\n{keypad_edge.log()}"
    scenarios = {s["scenario"]: s for s in json.loads(result.stdout)["scenarios"]}
    assert {name: s["passed"] for name, s in scenarios.items()} == {"keys": 1, "words": 1}
    (session,) = scenarios["keys"]["sessions"]
    pressed = keys_seen / f"{session}.keys"
    assert pressed in set(keys_seen.glob("*.keys")) - before
    assert pressed.read_text().split() == ["1", "2", "#"]
    for shown in [httpx.get(f"{keypad_dispatcher.base_url}/sessions/{s}", timeout=30).json()
                  for named in scenarios.values() for s in named["sessions"]]:
        assert shown.get("eval") is True, shown
