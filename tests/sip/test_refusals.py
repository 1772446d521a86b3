"""A session the dispatcher refuses is a SIP answer a trunk acts on: the number's key over its start
rate is `486 Busy Here`, a key the dispatcher does not know or a bot that cannot start is
`503 Service Unavailable`, both with `Retry-After`; the INVITE rings (180) while the edge asks, and
nothing is left started."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator

import pytest

from tests.phone.conftest import phone_env
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.sipp import run_sipp
from tests.sip.test_calls import call_id_of, session_ids, session_of, sip_ended
from tests.support.examples import PARROT
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher and the edge

KEY = "sip-refusal-test-key-0123456789"
UNKNOWN_NUMBER_KEY = "+14155550198"  # served, but its key is not one the dispatcher holds


@pytest.fixture(scope="module")
def keyed_dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    # One start a key, then one in a thousand seconds: the test spends the key's start itself.
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "BOT_FILE": str(PARROT / "bot.py"),
           "RESERVE_MIN_IDLE": "0", "DISPATCHER_API_KEYS": KEY, "START_RATE_PER_KEY": "0.001",
           "START_BURST_PER_KEY": "1"}
    with run_dispatcher(tmp_path_factory.mktemp("sip-keyed-dispatcher"), env) as running:
        yield running


@pytest.fixture(scope="module")
def keyed_edge(keyed_dispatcher: DispatcherProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    numbers = f'"{NUMBER}" = "SIP_TEST_KEY", "{UNKNOWN_NUMBER_KEY}" = "SIP_TEST_WRONG_KEY"'
    env = {"SIP_TEST_KEY": KEY, "SIP_TEST_WRONG_KEY": "not-a-key-of-this-dispatcher-0123456789"}
    with run_edge(keyed_dispatcher, tmp_path_factory.mktemp("sip-keyed-edge"), numbers, env) as running:
        yield running


def retry_after(messages: str, status: int) -> int | None:
    response = messages.split(f"SIP/2.0 {status} ", 1)[-1].split("\r\n\r\n", 1)[0]
    found = re.search(r"^Retry-After: (\d+)", response, re.MULTILINE)
    return int(found.group(1)) if found and f"SIP/2.0 {status} " in messages else None


async def test_a_number_whose_key_is_over_its_start_rate_is_busy_with_the_dispatchers_retry_after(
    keyed_dispatcher: DispatcherProcess, keyed_edge: EdgeProcess,
) -> None:
    async with api_client(base_url=keyed_dispatcher.base_url, timeout=30,
                          headers={"Authorization": f"Bearer {KEY}"}) as api:
        spent = await api.post("/start", json={"transport": "websocket"})  # the key's one start
        assert spent.status_code == 201, spent.text
        before = await session_ids(api)
        call = run_sipp("call_busy", NUMBER, keyed_edge.sip_port, keyed_edge.workdir)
        assert call.returncode == 0, f"{call.output}\n{keyed_edge.log()}"
        assert call.statuses()[-1] == 486
        assert 180 in call.statuses()  # it rang while the edge asked
        seconds = retry_after(call.messages, 486)
        assert seconds is not None and seconds > 60, call.messages  # the dispatcher's own (about 1000 s)
        assert await session_ids(api) == before


async def test_a_number_whose_key_the_dispatcher_refuses_is_unavailable(
    keyed_dispatcher: DispatcherProcess, keyed_edge: EdgeProcess,
) -> None:
    call = run_sipp("call_unavailable", UNKNOWN_NUMBER_KEY, keyed_edge.sip_port, keyed_edge.workdir)
    assert call.returncode == 0, f"{call.output}\n{keyed_edge.log()}"
    assert call.statuses()[-1] == 503
    assert retry_after(call.messages, 503) is not None, call.messages
    assert "HTTP 401" in keyed_edge.log()  # what the dispatcher said, in the edge's log


@pytest.fixture(scope="module")
def broken_edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    """A dispatcher whose bots exit at once (a broken image), and the edge in front of it."""
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "RESERVE_MIN_IDLE": "0",
           "LOCAL_BOT_COMMAND": "sh -c 'exit 3'"}
    with run_dispatcher(tmp_path_factory.mktemp("sip-broken-dispatcher"), env) as dispatcher, \
            run_edge(dispatcher, tmp_path_factory.mktemp("sip-broken-edge")) as edge:
        yield edge


def test_a_call_whose_bot_cannot_start_is_unavailable_rather_than_ringing_on(broken_edge: EdgeProcess) -> None:
    call = run_sipp("call_unavailable", NUMBER, broken_edge.sip_port, broken_edge.workdir)
    assert call.returncode == 0, f"{call.output}\n{broken_edge.log()}"
    assert call.statuses()[-1] == 503
    assert retry_after(call.messages, 503) is not None, call.messages
    assert "refused 503" in broken_edge.log()


async def test_the_edges_503_after_the_session_started_is_the_sessions_sip_end(broken_edge: EdgeProcess) -> None:
    call = run_sipp("call_unavailable", NUMBER, broken_edge.sip_port, broken_edge.workdir)
    assert call.returncode == 0, f"{call.output}\n{broken_edge.log()}"
    session_id = session_of(broken_edge, call_id_of(call.messages))
    assert session_id is not None, broken_edge.log()
    dispatcher_url = tomllib.loads((broken_edge.workdir / "edge.toml").read_text())["dispatcher_url"]
    async with api_client(base_url=dispatcher_url, timeout=30) as api:
        told = await sip_ended(api, session_id)
    assert (told["by"], told["how"], told["status"]) == ("edge", "refused", 503), told
    assert f"refused 503 ({told['reason']})" in broken_edge.log(), told  # the edge's own words, as it logged them
