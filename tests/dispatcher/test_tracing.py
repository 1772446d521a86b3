"""One session, one trace: the dispatcher's spans and its bot's, under the trace id the start answered,
exported by the standard OTEL_* variables to an OTLP/HTTP receiver (real processes, the real bot host).
With the variables unset nothing is exported, from the dispatcher or its bot: both install their exporter by
`botchannel.telemetry.exporter_choice` (tests/bot/test_tracing.py: unset, none), and a start's made-up trace
costs no span work (tests/dispatcher/test_tracing_unset.py) yet is answered and kept in its timeline
(tests/dispatcher/api/test_timeline.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.bot.test_user_bots import first_loud_audio
from tests.fakes.fixtures import fake_daily, fake_fly
from tests.support.http_client import api_client
from tests.support.otlp_receiver import ReceivedSpan, Receiver, otlp_receiver
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.waiting import wait_until
from tests.support.webrtc_client import WebRTCClient

__all__ = ["fake_daily", "fake_fly"]  # fixtures

# A bot no peer ever reaches ends at its connect timeout: its whole trace, in seconds.
QUICK_BOT = {"BOT_CONNECT_TIMEOUT_SECONDS": "2", "OTEL_BSP_SCHEDULE_DELAY": "100"}
DIALIN_SECRET = "dialinsecret" + "7" * 30
TOKEN = "eyJib2R5Ijp7InNlY3JldCI6InRvcCJ9fQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
CLIENT_TRACE, CLIENT_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def of_trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.trace_id == trace_id]


def whole(trace_ids: list[str]):
    def done(spans: list[ReceivedSpan]) -> bool:
        return all({"bot.session", "session.start"} <= {s.name for s in of_trace(spans, t)} for t in trace_ids)
    return done


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DispatcherProcess, Receiver]]:
    """One dispatcher (cold starts, its bots quick to end) exporting to one receiver, shared by the tests
    whose sessions and requests never meet: each reads only its own trace's spans, or its own paths'."""
    with otlp_receiver() as (endpoint, received):
        env = {**QUICK_BOT, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "RESERVE_MAX_IDLE": "0",
               "RESERVE_MIN_IDLE": "0", "DAILY_DIALIN_SECRET": DIALIN_SECRET}
        with run_dispatcher(tmp_path_factory.mktemp("traced"), env) as dispatcher:
            yield dispatcher, received


def assert_one_trace(spans: list[ReceivedSpan], trace_id: str, launch: str) -> None:
    """The session's trace holds the dispatcher's start and its bot's session, the bot's continuing the start."""
    trace = of_trace(spans, trace_id)
    by_name = {span.name: span for span in trace}
    assert {"POST /start", "session.start", "session.admission", "session.launch", "bot.session",
            "bot.connect"} <= set(by_name), sorted(by_name)
    assert {s.service for s in trace} == {"voicefleet-dispatcher", "voicefleet-bot"}
    # The bot's session continues the dispatcher's start; the start is the request's child.
    assert by_name["bot.session"].parent_span_id == by_name["session.start"].span_id
    assert by_name["session.start"].parent_span_id == by_name["POST /start"].span_id
    assert by_name["session.launch"].attributes["voicefleet.launch"] == launch
    assert by_name["bot.session"].attributes["voicefleet.end.reason"] == "connect_timeout"
    assert by_name["bot.connect"].status_code == 2  # nobody connected: the step failed


def started_traces(dispatcher: DispatcherProcess, starts: int) -> list[str]:
    """Starts `starts` sessions; their trace ids, each checked against its session's record."""
    answers = [httpx.post(f"{dispatcher.base_url}/start", json={}, timeout=30) for _ in range(starts)]
    assert [a.status_code for a in answers] == [201] * starts
    trace_ids = [a.json()["trace_id"] for a in answers]
    assert len(set(trace_ids)) == starts and all(len(t) == 32 for t in trace_ids)
    for answer, trace_id in zip(answers, trace_ids, strict=True):
        looked_up = httpx.get(f"{dispatcher.base_url}/sessions/{answer.json()['session_id']}", timeout=10)
        assert looked_up.json()["trace_id"] == trace_id
    return trace_ids


def test_each_session_is_one_trace_with_the_dispatchers_and_its_bots_spans(traced):
    """Two cold sessions (each start launches its bot), one of them started with a client's `traceparent`
    (here one that also asks for nothing to be sampled, flags `00`): that trace is joined to the session's
    by a link from `session.start`, and the session's trace id, the one the start answers, its timeline
    keeps and its bot continues from, is the deployment's own."""
    dispatcher, received = traced
    [plain] = started_traces(dispatcher, 1)
    answer = httpx.post(f"{dispatcher.base_url}/start", json={}, timeout=30,
                        headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00", "tracestate": "client=chosen"})
    assert answer.status_code == 201, answer.text
    linked = answer.json()["trace_id"]
    assert linked not in (CLIENT_TRACE, plain) and len(linked) == 32
    timeline = httpx.get(f"{dispatcher.base_url}/sessions/{answer.json()['session_id']}/timeline", timeout=10)
    assert timeline.json()["trace_id"] == linked
    spans = received.wait_for(whole([plain, linked]))
    for trace_id in (plain, linked):
        assert_one_trace(spans, trace_id, "cold")
    assert not [s.name for s in spans if s.trace_id == CLIENT_TRACE]  # nothing written into the client's trace
    by_name = {span.name: span for span in of_trace(spans, linked)}
    start = by_name["session.start"]
    assert start.links == ((CLIENT_TRACE, CLIENT_SPAN),)
    assert not [s for s in of_trace(spans, plain) if s.links]  # no client's trace, no link
    assert {s.trace_state for s in of_trace(spans, linked)} == {""}  # nor the client's tracestate
    assert by_name["POST /start"].parent_span_id == ""  # the request's span: a root of the deployment's trace
    # The bot continued the session's trace (its spans kept, though the client's flags said 00).
    assert by_name["bot.session"].service == "voicefleet-bot"


TRACED_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "traced" / "bot.py"


@pytest.mark.slow  # real dispatcher, real bot, real WebRTC
async def test_a_pipecat_traced_bots_conversation_turn_and_service_spans_join_the_sessions_trace(tmp_path):
    """The example bot enables Pipecat's tracing as pipecat-examples' open-telemetry bots do, knowing
    nothing of voicefleet: run by BOT_FILE, its spans continue the trace `POST /start` answered with.
    Its bot is a warm one (started, and the example imported, before any session): it takes the trace
    the start answered with (cold bots: test_each_session_is_one_trace_with_the_dispatchers_and_its_bots_spans)."""
    before = hashlib.sha256(TRACED_EXAMPLE.read_bytes()).hexdigest()
    with otlp_receiver() as (endpoint, received):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100",
               "BOT_FILE": str(TRACED_EXAMPLE), "RESERVE_MAX_IDLE": "1", "RESERVE_MIN_IDLE": "1"}
        with run_dispatcher(tmp_path, env) as dispatcher:
            wait_until(lambda: "connected (idle)" in dispatcher.log(), "an idle bot", timeout=60, detail=dispatcher.log)
            async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
                answer = await api.post("/start", json={})
                assert answer.status_code == 201, answer.text
                started = answer.json()
                async with WebRTCClient(dispatcher.base_url + started["offer_url"]) as client:
                    await first_loud_audio(client)  # the greeting: the tone "speech service" was called
            # The caller gone, the bot's pipeline ends, and its spans (the turn's last) are exported.
            spans = await received.arrived(
                lambda s: {"session.start", "bot.session", "bot.first_audio", "conversation", "turn", "tts"}
                <= {x.name for x in of_trace(s, started["trace_id"])}, timeout=30, context=dispatcher.log)
    by_name = {span.name: span for span in of_trace(spans, started["trace_id"])}
    assert by_name["session.launch"].attributes["voicefleet.launch"] == "warm"
    assert {s.service for s in by_name.values()} >= {"voicefleet-dispatcher", "voicefleet-bot"}
    assert by_name["bot.session"].parent_span_id == by_name["session.start"].span_id
    assert by_name["session.start"].parent_span_id == by_name["POST /start"].span_id
    assert by_name["conversation"].parent_span_id == by_name["bot.session"].span_id
    assert by_name["conversation"].attributes["conversation.id"] == started["session_id"]
    # The host's own steps: the caller connected, then heard the greeting.
    for step in ("bot.connect", "bot.first_audio"):
        assert by_name[step].parent_span_id == by_name["bot.session"].span_id and by_name[step].status_code != 2
    assert by_name["turn"].parent_span_id == by_name["conversation"].span_id
    assert by_name["tts"].parent_span_id == by_name["turn"].span_id
    assert by_name["tts"].attributes["text"] == "Hello, this call is traced."
    # Every span of the session is in the one trace: none of Pipecat's went elsewhere.
    assert not [s.name for s in spans if s.trace_id != started["trace_id"]
                and s.name in {"conversation", "turn", "tts"}]
    assert hashlib.sha256(TRACED_EXAMPLE.read_bytes()).hexdigest() == before  # the user's file unchanged


KEY = "tracing-test-key-0123456789"


def test_a_cloud_starts_auth_wait_room_and_provider_calls_are_its_spans(tmp_path, fake_fly, fake_daily):
    """On the Fly and Daily fakes (their documented APIs): the key's check, the provider's HTTP calls
    as client spans (their URLs without a query string, which may carry a credential), the room and
    the `?wait=started` wait (here for a bot that never dials in: its deadline passes), all under the
    start's trace; a refused key's check is an error span."""
    with otlp_receiver() as (endpoint, received):
        env = {"MACHINES": "fly", "DISPATCHER_API_KEYS": KEY, **fake_fly.env, **fake_daily.env,
               "START_WAIT_SECONDS": "1", "LOG_LEVEL": "warning",
               "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        with run_dispatcher(tmp_path, env) as dispatcher:
            refused = httpx.post(f"{dispatcher.base_url}/start", json={}, timeout=30,
                                 headers={"Authorization": "Bearer not-the-key"})
            assert refused.status_code == 401
            answer = httpx.post(f"{dispatcher.base_url}/start?wait=started", json={"transport": "daily"},
                                headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
            assert answer.status_code == 504, answer.text  # no bot dials in on the fake
            session_id = answer.json()["error"]["session_id"]

            def started(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
                return [s for s in spans if s.name == "session.start"
                        and s.attributes.get("voicefleet.session.id") == session_id]

            spans = received.wait_for(lambda s: bool(started(s)) and {"session.wait", "session.room", "POST /start"}
                                      <= {x.name for x in of_trace(s, started(s)[0].trace_id)}, timeout=30)
            spans = received.wait_for(lambda s: any(x.name == "session.auth" and x.status_code == 2 for x in s))
    trace_id = started(spans)[0].trace_id
    trace = of_trace(spans, trace_id)
    by_name = {span.name: span for span in trace}
    assert by_name["session.auth"].parent_span_id == by_name["POST /start"].span_id
    assert by_name["session.auth"].status_code != 2
    for step in ("session.admission", "session.launch", "session.room", "session.wait"):
        assert by_name[step].parent_span_id == by_name["session.start"].span_id, step
    assert (by_name["session.wait"].status_code, by_name["session.wait"].attributes["error.type"]) == (
        2, "start_timeout")
    calls = [span for span in trace if span.attributes.get("url.full")]
    assert {urlsplit(str(c.attributes["url.full"])).port for c in calls} >= {
        urlsplit(fake_fly.url).port, urlsplit(fake_daily.url).port}, [c.attributes for c in calls]
    for call in calls:
        url = str(call.attributes["url.full"])
        assert "?" not in url and "@" not in url, url  # no query string, no userinfo
        assert call.attributes["server.address"] == "127.0.0.1"
        assert isinstance(call.attributes.get("http.response.status_code"), int), call.attributes
    # Each call inside its step: the machine's create in the launch, the room's in the room, ...
    steps = {span.span_id: span.name for span in trace if span.name.startswith("session.")}
    assert {steps.get(call.parent_span_id) for call in calls} >= {"session.launch", "session.room"}
    # The refused key's check: in its own request's trace (no session began), an error with its code.
    [refusal] = [s for s in spans if s.name == "session.auth" and s.status_code == 2]
    assert refusal.trace_id != trace_id and refusal.attributes["error.type"] == "unauthorized"


async def test_secrets_in_request_paths_and_queries_never_reach_the_collector(traced):
    """The request spans carry `url.path` and `url.query`: the Daily dial-in webhook's secret (a reusable
    start credential) and a `?token=` (also spelt `?%74oken=`) reach the collector masked as in the logs
    (tests/dispatcher/test_log_redaction.py), and the carriers' stream tokens in WebSocket paths too."""
    dispatcher, received = traced
    webhook = httpx.post(f"{dispatcher.base_url}/phone/daily/dialin/{DIALIN_SECRET}", json={}, timeout=30)
    assert webhook.status_code == 200  # Daily's verification ping: the secret was right
    for query in (f"token={TOKEN}", f"%74oken={TOKEN}&x=1"):
        assert httpx.get(f"{dispatcher.base_url}/sessions/s-1?{query}", timeout=30).status_code == 404
    ws = dispatcher.base_url.replace("http://", "ws://")
    for path in (f"/ws/twilio/{TOKEN}", f"/ws/generic/voicefleet?token={TOKEN}"):
        with pytest.raises(InvalidStatus):
            async with connect(ws + path, proxy=None, open_timeout=30):
                pass
    spans = await received.arrived(
        lambda s: sum(x.attributes.get("url.path") == "/sessions/s-1" for x in s) == 2
        and any(x.name.startswith("POST /phone/daily/dialin") for x in s))
    [dialin] = [s for s in spans if s.name.startswith("POST /phone/daily/dialin")]
    assert dialin.attributes["url.path"] == "/phone/daily/dialin/[redacted]", dialin.attributes
    assert dialin.name == "POST /phone/daily/dialin/{secret}"  # the route's template, as it was
    queries = sorted(str(s.attributes.get("url.query")) for s in spans
                     if s.attributes.get("url.path") == "/sessions/s-1")
    assert queries == ["token=[redacted]", "token=[redacted]&x=1"], queries
    for span in spans:
        shown = f"{span.name} {span.attributes}"
        assert DIALIN_SECRET not in shown and TOKEN not in shown, shown
