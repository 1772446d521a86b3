"""The edge's stop drains (sipedge/drain.py, docs/sip.md#draining), with SIPp as the trunk and the real edge
process in front of a real dispatcher whose bots are the light echo host (tests/sip/test_workers.py): on the
first SIGTERM the calls in flight go on while a new INVITE is refused `503` with Retry-After, and the edge exits
once they end; past `drain_seconds` the rest get the edge's BYE; a second SIGTERM hangs them up at once. With
workers behind Kamailio the supervisor passes the drain on, Kamailio refuses new INVITEs itself, and the caller's BYE
still reaches its worker."""

from __future__ import annotations

import asyncio
import re
import signal
import time

import pytest

from sipedge.drain import REPEAT_SECONDS
from tests.sip.caller_cue import CuedCaller
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.sipp import SippRun, run_sipp
from tests.sip.test_calls import answered_sipp_call
from tests.sip.test_inbound_digest_calls import kamailio_children
from tests.sip.test_workers import ANSWERED_BY, echo_dispatcher, wait_for_workers, worker_pids  # noqa: F401 - a fixture
from tests.support.ports import free_port_pair
from tests.support.processes import DispatcherProcess
from tests.support.waiting import within

EXIT_SECONDS = 60.0  # an edge whose calls ended exits within this (its stop is seconds; the machine may be busy)
RETRY_AFTER = re.compile(r"^SIP/2\.0 503 [^\n]*\n(?:[^\n]+\n)*?Retry-After: *(\d+)", re.MULTILINE | re.IGNORECASE)


def refused_with_retry_after(edge: EdgeProcess) -> str:
    """A new call's INVITE, placed by SIPp, answered 503: its Retry-After."""
    refused = run_sipp("call_unavailable", NUMBER, edge.sip_port, edge.workdir)
    assert refused.returncode == 0, f"{refused.output}\n{edge.log()[-6000:]}"
    found = RETRY_AFTER.search(refused.messages.replace("\r\n", "\n"))
    assert found is not None, refused.messages
    return found.group(1)


async def logged(edge: EdgeProcess, pattern: str) -> None:
    if await within(lambda: re.search(pattern, edge.log())) is None:
        raise AssertionError(f"{pattern!r} never in the edge's log:\n{edge.log()[-6000:]}")


async def exited(edge: EdgeProcess) -> int:
    code = await asyncio.to_thread(edge.process.wait, EXIT_SECONDS)
    return int(code)


async def still_up(calling: asyncio.Task[SippRun]) -> bool:
    """The caller's call not over yet (its SIPp still runs), a moment after whatever might have ended it."""
    await asyncio.sleep(0.5)
    return not calling.done()


async def test_calls_in_flight_outlive_the_sigterm_a_new_invite_is_refused_503_and_a_second_sigterm_ends_them(
    echo_dispatcher: DispatcherProcess, tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
) -> None:
    """The default edge, one worker and no inbound digest credential: its one PJSIP process, no Kamailio."""
    with run_edge(echo_dispatcher, tmp_path_factory.mktemp("drain-edge")) as edge:
        assert worker_pids(edge) == {} and kamailio_children(edge) == []  # one PJSIP process, the edge itself
        cued = CuedCaller()
        try:
            _, first = await answered_sipp_call(edge, "call_until_cued", media_port=free_port_pair(2), cued=cued)
            # The second caller waits for the edge's BYE (call_hung_up_by_bot.xml): only the second SIGTERM sends it.
            _, second = await answered_sipp_call(edge, "call_hung_up_by_bot", media_port=free_port_pair(2))
            edge.process.send_signal(signal.SIGTERM)
            first_signal = time.monotonic()
            await logged(edge, r"sipedge: draining: 2 calls in flight go on until they end, for 300 s at most")
            assert refused_with_retry_after(edge) == "5"
            assert re.search(r"refused 503: the edge is draining", edge.log()), edge.log()[-6000:]
            assert not first.done() and not second.done() and edge.process.poll() is None, edge.log()[-6000:]
        finally:
            cued.cue()  # the first caller hangs up
        assert (await first).returncode == 0, edge.log()[-6000:]  # its BYE answered by the draining edge
        assert await still_up(second) and edge.process.poll() is None, edge.log()[-6000:]
        # A person's second signal: one within REPEAT_SECONDS of the first is taken for the same stop told twice.
        await asyncio.sleep(max(0.0, first_signal + REPEAT_SECONDS + 1 - time.monotonic()))
        edge.process.send_signal(signal.SIGTERM)
        assert (await second).returncode == 0, edge.log()[-6000:]  # the edge's BYE, answered
        assert await exited(edge) == 0, edge.log()[-6000:]
    assert "a second signal came with calls still in flight: they are hung up" in edge.log()
    assert "Kamailio" not in edge.log()


async def test_a_call_still_up_when_the_drain_bound_passes_gets_the_edges_bye_and_the_edge_exits(
    echo_dispatcher: DispatcherProcess, tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
) -> None:
    with run_edge(echo_dispatcher, tmp_path_factory.mktemp("drain-bound-edge"), settings="drain_seconds = 2") as edge:
        _, calling = await answered_sipp_call(edge, "call_hung_up_by_bot", media_port=free_port_pair(2))
        signalled = time.time()
        edge.process.send_signal(signal.SIGTERM)
        call = await calling
        assert call.returncode == 0, f"{call.output}\n{edge.log()[-6000:]}"  # the edge's BYE, answered
        assert await exited(edge) == 0, edge.log()[-6000:]
    bye = call.received_at("BYE ")
    assert bye is not None and bye - signalled >= 1.9, (bye, signalled)  # not before the bound (only later, if busy)
    assert "the drain's 2 s have passed with calls still in flight: they are hung up" in edge.log()


@pytest.mark.slow  # Kamailio and two PJSIP workers
async def test_workers_behind_kamailio_drain_a_call_to_its_callers_bye_and_refuse_a_new_one_503(
    echo_dispatcher: DispatcherProcess, tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
) -> None:
    with run_edge(echo_dispatcher, tmp_path_factory.mktemp("drain-workers-edge"), workers=2) as edge:
        await wait_for_workers(edge, 2)
        cued = CuedCaller()
        try:
            worker, calling = await answered_sipp_call(edge, "call_until_cued", ANSWERED_BY,
                                                       media_port=free_port_pair(2), cued=cued)
            edge.process.send_signal(signal.SIGTERM)
            await logged(edge, rf"\[worker {worker}\] sipedge: draining: 1 calls in flight")
            # Kamailio refuses it itself (the supervisor told it first): no draining worker sees the INVITE.
            assert refused_with_retry_after(edge) == "5"
            await logged(edge, r"refused by the front \(503\): the edge is draining")
            assert not re.search(r"\[worker \d\] .*refused 503: the edge is draining", edge.log()), edge.log()[-6000:]
            assert not calling.done() and edge.process.poll() is None, edge.log()[-6000:]
        finally:
            cued.cue()  # the caller hangs up: its BYE goes through the front to its worker
        assert (await calling).returncode == 0, edge.log()[-6000:]
        assert await exited(edge) == 0, edge.log()[-6000:]
    assert "sipedge: drained: every worker's calls have ended" in edge.log()
