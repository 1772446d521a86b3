"""One session, one trace: the dispatcher's spans and its bot's, under the trace id the start answered,
exported by the standard OTEL_* variables to an OTLP/HTTP receiver (real processes, the real bot host)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from tests.bot.test_user_bots import first_loud_audio
from tests.support.otlp_receiver import ReceivedSpan, otlp_receiver
from tests.support.processes import run_dispatcher
from tests.support.waiting import wait_until
from tests.support.webrtc_client import WebRTCClient

# A bot no peer ever reaches ends at its connect timeout: its whole trace, in seconds.
QUICK_BOT = {"BOT_CONNECT_TIMEOUT_SECONDS": "2", "OTEL_BSP_SCHEDULE_DELAY": "100"}


def of_trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.trace_id == trace_id]


def whole(trace_ids: list[str]):
    def done(spans: list[ReceivedSpan]) -> bool:
        return all({"bot.session", "session.start"} <= {s.name for s in of_trace(spans, t)} for t in trace_ids)
    return done


@pytest.mark.parametrize("reserve", ["cold", "warm"])
def test_each_session_is_one_trace_with_the_dispatchers_and_its_bots_spans(tmp_path, reserve):
    with otlp_receiver() as (endpoint, received):
        idle = "0" if reserve == "cold" else "2"
        env = {**QUICK_BOT, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "RESERVE_MAX_IDLE": idle, "RESERVE_MIN_IDLE": idle}
        with run_dispatcher(tmp_path, env) as dispatcher:
            if reserve == "warm":
                wait_until(lambda: dispatcher.log().count("connected (idle)") >= 2, "two idle bots", timeout=60,
                           detail=dispatcher.log)
            answers = [httpx.post(f"{dispatcher.base_url}/start", json={}, timeout=30) for _ in range(2)]
            assert [a.status_code for a in answers] == [201, 201]
            trace_ids = [a.json()["trace_id"] for a in answers]
            assert len(set(trace_ids)) == 2 and all(len(t) == 32 for t in trace_ids)
            for answer, trace_id in zip(answers, trace_ids, strict=True):
                looked_up = httpx.get(f"{dispatcher.base_url}/sessions/{answer.json()['session_id']}", timeout=10)
                assert looked_up.json()["trace_id"] == trace_id
            spans = received.wait_for(whole(trace_ids))
    for trace_id in trace_ids:
        trace = of_trace(spans, trace_id)
        by_name = {span.name: span for span in trace}
        assert {"POST /start", "session.start", "session.admission", "session.launch", "bot.session",
                "bot.connect"} <= set(by_name), sorted(by_name)
        assert {s.service for s in trace} == {"voicefleet-dispatcher", "voicefleet-bot"}
        # The bot's session continues the dispatcher's start; the start is the request's child.
        assert by_name["bot.session"].parent_span_id == by_name["session.start"].span_id
        assert by_name["session.start"].parent_span_id == by_name["POST /start"].span_id
        assert by_name["session.launch"].attributes["voicefleet.launch"] == reserve
        assert by_name["bot.session"].attributes["voicefleet.end.reason"] == "connect_timeout"
        assert by_name["bot.connect"].status_code == 2  # nobody connected: the step failed


def test_with_the_variables_unset_nothing_is_exported(tmp_path):
    with otlp_receiver() as (endpoint, received):
        # The receiver listens, but nothing names it: no exporter, in the dispatcher or its bot.
        with run_dispatcher(tmp_path, {**QUICK_BOT, "RESERVE_MAX_IDLE": "0"}) as dispatcher:
            answer = httpx.post(f"{dispatcher.base_url}/start", json={}, timeout=30)
            assert answer.status_code == 201
            session = answer.json()["session_id"]
            # A trace id all the same, to correlate the answer, the timeline and the logs.
            assert len(answer.json()["trace_id"]) == 32
            timeline = httpx.get(f"{dispatcher.base_url}/sessions/{session}/timeline", timeout=10)
            assert timeline.json()["trace_id"] == answer.json()["trace_id"]
            wait_until(lambda: "exited" in dispatcher.log(), "the bot's exit", timeout=30, detail=dispatcher.log)
        assert received.requests == 0


TRACED_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "traced" / "bot.py"


@pytest.mark.slow  # real dispatcher, real bot, real WebRTC
async def test_a_pipecat_traced_bots_conversation_turn_and_service_spans_join_the_sessions_trace(tmp_path):
    """The example bot enables Pipecat's tracing as pipecat-examples' open-telemetry bots do, knowing
    nothing of voicefleet: run by BOT_FILE, its spans continue the trace `POST /start` answered with."""
    before = hashlib.sha256(TRACED_EXAMPLE.read_bytes()).hexdigest()
    with otlp_receiver() as (endpoint, received):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100",
               "BOT_FILE": str(TRACED_EXAMPLE), "RESERVE_MAX_IDLE": "0", "RESERVE_MIN_IDLE": "0"}
        with run_dispatcher(tmp_path, env) as dispatcher:
            async with httpx.AsyncClient(base_url=dispatcher.base_url, timeout=30) as api:
                answer = await api.post("/start", json={})
                assert answer.status_code == 201, answer.text
                started = answer.json()
                async with WebRTCClient(dispatcher.base_url + started["offer_url"]) as client:
                    await first_loud_audio(client)  # the greeting: the tone "speech service" was called
            # The caller gone, the bot's pipeline ends, and its spans (the turn's last) are exported.
            spans = received.wait_for(
                lambda s: {"session.start", "bot.session", "conversation", "turn", "tts"}
                <= {x.name for x in of_trace(s, started["trace_id"])}, timeout=30)
    by_name = {span.name: span for span in of_trace(spans, started["trace_id"])}
    assert by_name["bot.session"].parent_span_id == by_name["session.start"].span_id
    assert by_name["conversation"].parent_span_id == by_name["bot.session"].span_id
    assert by_name["conversation"].attributes["conversation.id"] == started["session_id"]
    assert by_name["turn"].parent_span_id == by_name["conversation"].span_id
    assert by_name["tts"].parent_span_id == by_name["turn"].span_id
    assert by_name["tts"].attributes["text"] == "Hello, this call is traced."
    # Every span of the session is in the one trace: none of Pipecat's went elsewhere.
    assert not [s.name for s in spans if s.trace_id != started["trace_id"]
                and s.name in {"conversation", "turn", "tts"}]
    assert hashlib.sha256(TRACED_EXAMPLE.read_bytes()).hexdigest() == before  # the user's file unchanged
