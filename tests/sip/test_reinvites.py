"""A trunk's re-INVITEs mid-call, with SIPp as the trunk against `python -m sipedge` and a real local
dispatcher running the echo bot: hold (a=sendonly) and back, a codec change from μ-law to A-law, and
session timers (RFC 4028) refreshed by UPDATE and by re-INVITE. Each is answered 200 (the scenario
checks what the answer's SDP and headers say), the call survives it, and the caller's words come back
over RTP after it; a re-INVITE offering no G.711 is refused 488 and the call goes on as it was, and a
session interval under PJSIP's least (90 s) is refused 422 before any session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.phone.conftest import phone_env
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.sipp import run_sipp
from tests.sip.test_calls import heard_call, session_ids, words_came_back
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher, the edge, bot processes importing Pipecat

ULAW, ALAW = 0, 8  # RTP payload types


@pytest.fixture(scope="module")
def echo_dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    with run_dispatcher(tmp_path_factory.mktemp("sip-echo-dispatcher"), phone_env(tmp_path_factory.mktemp("calls"))) \
            as running:
        yield running


@pytest.fixture(scope="module")
def echo_edge(echo_dispatcher: DispatcherProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    with run_edge(echo_dispatcher, tmp_path_factory.mktemp("sip-echo-edge")) as running:
        yield running


# call_reinvite_hold: hold, back, then an offer with no G.711 (refused 488), in one call.
@pytest.mark.parametrize("scenario", ["call_reinvite_hold", "call_session_timer"])
async def test_a_trunks_reinvite_keeps_the_call_and_its_audio(
    echo_dispatcher: DispatcherProcess, echo_edge: EdgeProcess, scenario: str,
) -> None:
    call, capture = await heard_call(echo_dispatcher, echo_edge, scenario, echoed_above=0.6)
    if scenario == "call_reinvite_hold":  # its third re-INVITE offers no G.711: exactly 488 (not PJSIP's 500)
        assert call.final_answers("4 INVITE") == {488}, call.statuses()
    assert set(capture.payload_types()) == {ULAW}
    similarity = words_came_back(capture.pcm("ulaw"))
    assert similarity > 0.6, f"the caller's words came back at {similarity:.2f} after {scenario}\n{echo_edge.log()}"


async def test_a_codec_change_to_a_law_is_answered_and_the_edge_sends_a_law_after_it(
    echo_dispatcher: DispatcherProcess, echo_edge: EdgeProcess,
) -> None:
    call, capture = await heard_call(echo_dispatcher, echo_edge, "call_reinvite_alaw", echoed_above=0.6)
    types = capture.payload_types()
    assert types[0] == ULAW and types[-1] == ALAW and types == sorted(types), set(types)  # μ-law, then A-law only
    similarity = words_came_back(capture.pcm_as_sent())
    assert similarity > 0.6, f"the caller's words came back at {similarity:.2f} after the change\n{echo_edge.log()}"


async def test_a_session_interval_below_the_edges_least_is_422_before_any_session(
    echo_dispatcher: DispatcherProcess, echo_edge: EdgeProcess,
) -> None:
    async with api_client(base_url=echo_dispatcher.base_url, timeout=30) as api:
        before = await session_ids(api)
        call = run_sipp("call_session_timer_too_short", NUMBER, echo_edge.sip_port, echo_edge.workdir)
        assert call.returncode == 0, f"{call.output}\n{echo_edge.log()}"  # the 422 names Min-SE: 90
        assert call.statuses()[-1] == 422
        assert await session_ids(api) == before  # nothing was started or asked for
