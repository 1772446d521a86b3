"""A key the caller presses (RFC 2833 telephone-events) reaches the bot as Pipecat's InputDTMFFrame,
through the edge's stream (tests/sip/keypad_bot.py writes down what it gets)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.phone.conftest import phone_env
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.sipp import run_sipp
from tests.support.ports import free_port_pair
from tests.support.processes import run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher, the edge and a bot process importing Pipecat

KEYPAD_BOT = Path(__file__).with_name("keypad_bot.py")


@pytest.fixture(scope="module")
def keys_seen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def keypad_edge(keys_seen: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    env = {**phone_env(keys_seen), "BOT_FILE": str(KEYPAD_BOT), "RESERVE_MIN_IDLE": "0"}
    with run_dispatcher(tmp_path_factory.mktemp("sip-keypad-dispatcher"), env) as dispatcher, \
            run_edge(dispatcher, tmp_path_factory.mktemp("sip-keypad-edge")) as edge:
        yield edge


def test_a_key_the_caller_presses_reaches_the_bot(keypad_edge: EdgeProcess, keys_seen: Path) -> None:
    call = run_sipp("call_keys", NUMBER, keypad_edge.sip_port, keypad_edge.workdir, media_port=free_port_pair(2))
    assert call.returncode == 0, f"{call.output}\n{keypad_edge.log()}"
    (pressed,) = keys_seen.glob("*.keys")
    assert pressed.read_text().split() == ["1"]
