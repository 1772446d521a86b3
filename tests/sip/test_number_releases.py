"""A number pinned to a release in the edge's file (`numbers = {"+1…" = {key = "", release = "next"}}`)
reaches a bot of that release; a number in today's form gets the dispatcher's own choice; a number
pinned to a release the dispatcher lacks is refused 500 without Retry-After (sipedge/refusals.py). An
eval's call (its INVITE's `X-Voicefleet-Eval` token, from `POST /sip/eval_tokens`) is marked an eval's
and runs the token's release; a forged token is refused 603 and starts nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.phone.conftest import ECHO_BOT, phone_env
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.sipp import run_sipp
from tests.sip.test_calls import call_id_of, session_ids, session_of
from tests.sip.test_refusals import retry_after
from tests.sip.test_sip_caller import loadtest, records
from tests.support.http_client import api_client
from tests.support.ports import free_port_pair
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher and the edge

CANARY_NUMBER = "+14155550197"  # pinned to `next`, a release taking no traffic
STALE_NUMBER = "+14155550196"  # pinned to a release the dispatcher does not have


@pytest.fixture(scope="module")
def released_dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "RESERVE_MIN_IDLE": "0",
           "BOT_RELEASES": f"stable={ECHO_BOT},next={ECHO_BOT}", "RELEASE_WEIGHTS": "stable=100,next=0"}
    with run_dispatcher(tmp_path_factory.mktemp("sip-released-dispatcher"), env) as running:
        yield running


@pytest.fixture(scope="module")
def released_edge(released_dispatcher: DispatcherProcess,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    numbers = (f'"{NUMBER}" = "", "{CANARY_NUMBER}" = {{ key = "", release = "next" }}, '
               f'"{STALE_NUMBER}" = {{ key = "", release = "gone-v1" }}')
    with run_edge(released_dispatcher, tmp_path_factory.mktemp("sip-released-edge"), numbers) as running:
        yield running


@pytest.mark.parametrize(("number", "release"), [(CANARY_NUMBER, "next"), (NUMBER, "stable")])
async def test_a_numbers_calls_run_the_release_its_entry_names(
    released_dispatcher: DispatcherProcess, released_edge: EdgeProcess, number: str, release: str,
) -> None:
    call = run_sipp("call_answered", number, released_edge.sip_port, released_edge.workdir,
                    media_port=free_port_pair(2))
    assert call.returncode == 0, f"{call.output}\n{released_edge.log()}"
    session_id = session_of(released_edge, call_id_of(call.messages))
    assert session_id is not None, released_edge.log()
    async with api_client(base_url=released_dispatcher.base_url, timeout=30) as api:
        session = (await api.get(f"/sessions/{session_id}")).json()
    assert session["release"] == release, session


async def test_a_number_pinned_to_a_release_the_dispatcher_lacks_is_refused_500_for_this_call_alone(
    released_dispatcher: DispatcherProcess, released_edge: EdgeProcess,
) -> None:
    async with api_client(base_url=released_dispatcher.base_url, timeout=30) as api:
        before = await session_ids(api)
        call = run_sipp("call_release_unknown", STALE_NUMBER, released_edge.sip_port, released_edge.workdir)
        assert call.returncode == 0, f"{call.output}\n{released_edge.log()}"
        assert call.statuses()[-1] == 500
        assert retry_after(call.messages, 500) is None  # the edge is not out: its other numbers still work
        assert "unknown_release: the number's release 'gone-v1'" in released_edge.log()  # the log names it
        assert await session_ids(api) == before


async def test_an_evals_call_is_marked_an_evals_and_runs_the_release_its_token_pins(
    released_dispatcher: DispatcherProcess, released_edge: EdgeProcess,
) -> None:
    async with api_client(base_url=released_dispatcher.base_url, timeout=30) as api:
        asked = await api.post("/sip/eval_tokens", json={"release": "next"})
        assert asked.status_code == 201, asked.text
        call = run_sipp("call_eval", NUMBER, released_edge.sip_port, released_edge.workdir,
                        variables={"eval_token": asked.json()["token"]})
        assert call.returncode == 0 and call.statuses()[-1] == 200, f"{call.output}\n{released_edge.log()}"
        session_id = session_of(released_edge, call_id_of(call.messages))
        assert session_id is not None, released_edge.log()
        session = (await api.get(f"/sessions/{session_id}")).json()
    assert (session["release"], session.get("eval")) == ("next", True), session  # the number alone: stable, unmarked


async def test_a_forged_eval_header_is_refused_603_and_marks_nothing(
    released_dispatcher: DispatcherProcess, released_edge: EdgeProcess,
) -> None:
    async with api_client(base_url=released_dispatcher.base_url, timeout=30) as api:
        before = await session_ids(api)
        call = run_sipp("call_eval", NUMBER, released_edge.sip_port, released_edge.workdir,
                        variables={"eval_token": "eyJldiI6dHJ1ZSwicmVsIjoibmV4dCJ9.Zm9yZ2Vk"})
        assert call.returncode == 0, f"{call.output}\n{released_edge.log()}"
        assert call.statuses()[-1] == 603 and retry_after(call.messages, 603) is None
        assert "eval_token_refused" in released_edge.log()
        assert await session_ids(api) == before


def test_a_sip_load_test_with_release_runs_that_release_through_the_commands_own_caller(
    released_dispatcher: DispatcherProcess, released_edge: EdgeProcess, tmp_path: Path,
) -> None:
    result = loadtest(released_dispatcher.base_url, f"sip:{NUMBER}@127.0.0.1:{released_edge.sip_port}", tmp_path,
                      "--rate", "1/s", "--duration", "1s", "--turns", "0", "--release", "next")
    (call,) = records(tmp_path)
    assert call["session_id"], f"{result.output}\n{call}\n{released_edge.log()}"
    session = httpx.get(f"{released_dispatcher.base_url}/sessions/{call['session_id']}", timeout=30).json()
    assert (session["release"], "eval" in session) == ("next", False), session  # pinned, counted as a caller's
