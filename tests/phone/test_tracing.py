"""Signalling and phone paths are steps of their session's trace: a local WebRTC session's offer,
and a carrier's call from its handshake to its hang-up, exported by a real dispatcher process and
its real bots (the default parrot) to an OTLP/HTTP receiver."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.phone.conftest import phone_env, wait_active_sessions, wait_for_idle_bot
from tests.phone.test_calls import place_call
from tests.support.audio import loud_segments
from tests.support.examples import PARROT
from tests.support.http_client import api_client
from tests.support.otlp_receiver import ReceivedSpan, Receiver, otlp_receiver
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.webrtc_client import WebRTCClient

pytestmark = pytest.mark.slow  # a real dispatcher, real bot processes importing Pipecat

PHONE_STEPS = {"phone.call", "phone.authenticate", "phone.handshake", "phone.attach", "phone.media_attach",
               "phone.media_socket", "phone.relay", "session.start", "bot.session"}

OFFER_REQUEST = "POST /sessions/{session_id}/api/offer"


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DispatcherProcess, Receiver]]:
    with otlp_receiver() as (endpoint, received):
        env = {**phone_env(tmp_path_factory.mktemp("calls")), "BOT_FILE": str(PARROT / "bot.py"),
               "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        with run_dispatcher(tmp_path_factory.mktemp("traced-phone"), env) as running:
            yield running, received


def of_trace(spans: list[ReceivedSpan], trace_id: str) -> dict[str, ReceivedSpan]:
    return {span.name: span for span in spans if span.trace_id == trace_id}


async def test_an_offer_is_a_step_of_its_sessions_trace(traced: tuple[DispatcherProcess, Receiver]) -> None:
    dispatcher, received = traced
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        answer = await api.post("/start", json={})
        assert answer.status_code == 201, answer.text
        session = answer.json()
        async with WebRTCClient(dispatcher.base_url + session["offer_url"], connect_timeout=30) as client:
            for _ in range(600):  # the greeting: the answer was the bot's
                if loud_segments(client.recording.times, client.recording.levels):
                    break
                await asyncio.sleep(0.05)
        await api.delete(f"/sessions/{session['session_id']}")
    trace_id = session["trace_id"]
    spans = await received.arrived(lambda spans: {"session.offer", "session.start"} <= set(of_trace(spans, trace_id))
                                   and any(s.name == OFFER_REQUEST for s in spans), timeout=60)
    steps = of_trace(spans, trace_id)
    offer = steps["session.offer"]
    # In the session's trace, under its start, though the client's request began a trace of its own.
    assert offer.parent_span_id == steps["session.start"].span_id
    assert offer.attributes["voicefleet.session.id"] == session["session_id"]
    assert offer.status_code != 2
    requests = [s for s in spans if s.name == OFFER_REQUEST]
    assert requests and all(s.trace_id != trace_id for s in requests)  # linked, not the same trace


async def test_a_calls_steps_are_one_trace_with_its_session(traced: tuple[DispatcherProcess, Receiver]) -> None:
    dispatcher, received = traced
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        call, session_id = await place_call(api, "twilio", {})
        await call.bot_audio(0.1, timeout=30)  # the greeting: the relay runs
        await call.hang_up()
        assert await wait_active_sessions(api, 0) == 0
        timeline = await api.get(f"/sessions/{session_id}/timeline")
        assert timeline.status_code == 200, timeline.text
    trace_id = timeline.json()["trace_id"]
    spans = await received.arrived(lambda spans: PHONE_STEPS <= set(of_trace(spans, trace_id)), timeout=60)
    steps = of_trace(spans, trace_id)
    call_span = steps["phone.call"]
    for name in ("phone.authenticate", "phone.handshake", "phone.attach", "phone.relay"):
        assert steps[name].parent_span_id == call_span.span_id, name
    assert steps["session.start"].parent_span_id == steps["phone.attach"].span_id
    assert steps["phone.media_attach"].parent_span_id == steps["phone.attach"].span_id
    assert steps["bot.session"].parent_span_id == steps["session.start"].span_id
    assert call_span.attributes["voicefleet.phone.carrier"] == "twilio"
    assert call_span.attributes["voicefleet.session.id"] == session_id
    # The caller's hang-up (Twilio's `stop`, then its close) also ends the bot's pipeline, so either
    # side's close may reach the relay first.
    ended_by = call_span.attributes["voicefleet.phone.ended_by"]
    assert ended_by in ("carrier", "bot")
    assert steps["phone.relay"].attributes["voicefleet.phone.ended_by"] == ended_by
    assert steps["phone.authenticate"].attributes["voicefleet.phone.admitted"] == "token"
    assert steps["phone.media_socket"].attributes["voicefleet.phone.media"] == "direct"
    assert steps["phone.relay"].attributes["voicefleet.phone.bot_frames"] > 0
