"""Review: a call still up when the drain's bound passes is hung up by the edge (its BYE), yet the session's
`sip_ended` says the caller hung up. Edge.run ends the drain with `stack.stop`, whose `hangupAllCalls` goes round
SipCall.end, so no `edge_ended` is set; SipCall.onCallState then reads the DISCONNECTED of an answered call with no
received request as the caller's BYE (sipedge/sip_end.py `disconnected`: `not method and confirmed`). Every release
or node drain with a long call in flight thus wrote "by: caller" into the session's timeline, webhook and report; the
SIP thread's stop now ends each call through SipCall.end, told as the edge's, before hangupAllCalls."""

from __future__ import annotations

import signal

import pytest

from tests.sip.conftest import run_edge
from tests.sip.test_calls import answered_sipp_call, sip_ended
from tests.sip.test_drain import exited
from tests.sip.test_workers import echo_dispatcher  # noqa: F401 - a fixture
from tests.support.http_client import api_client
from tests.support.ports import free_port_pair
from tests.support.processes import DispatcherProcess


@pytest.mark.parametrize(("settings", "why"), [
    ("drain_seconds = 2", "the edge's drain ended (its 2 s passed)"),
    ("drain_seconds = 0", "the edge stopped (drain_seconds = 0: no drain)"),  # a stop at once: the same hang-up
])
async def test_a_call_hung_up_at_the_drains_bound_is_told_as_the_edges_end_not_the_callers(
    echo_dispatcher: DispatcherProcess, tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
    settings: str, why: str,
) -> None:
    with run_edge(echo_dispatcher, tmp_path_factory.mktemp("drain-cause-edge"), settings=settings) as edge:
        session_id, calling = await answered_sipp_call(edge, "call_hung_up_by_bot", media_port=free_port_pair(2))
        edge.process.send_signal(signal.SIGTERM)
        call = await calling
        assert call.returncode == 0, f"{call.output}\n{edge.log()[-6000:]}"  # the edge's BYE, answered
        assert call.received_at("BYE ") is not None, call.messages  # the caller sent none: it received the edge's
        assert await exited(edge) == 0, edge.log()[-6000:]
    async with api_client(base_url=echo_dispatcher.base_url, timeout=30) as api:
        told = await sip_ended(api, session_id)
    assert (told["by"], told["how"], told.get("reason")) == ("edge", "bye", why), told
