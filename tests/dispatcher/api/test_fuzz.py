"""Fuzz the HTTP API with hypothesis: whatever a client sends, the answer is never a 5xx.

Generated requests cover every route of the OpenAPI document with arbitrary JSON, arbitrary
bytes, odd headers and odd path segments. The provider is the stand-in bot, so a request that
gets through validation really launches a process.
"""

from __future__ import annotations

import json
import string

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV, STANDIN_LOCAL_BOT_ENV
from tests.support.dispatcher_server import serving

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"body": json_values}).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"sdp": st.text(max_size=100), "type": st.sampled_from(["offer", "answer", ""])}).map(
        lambda v: json.dumps(v).encode()
    ),
    st.binary(max_size=200),
    # Valid JSON UTF-8 cannot encode (a lone surrogate), which hypothesis' text never generates.
    st.sampled_from([b'{"body": {"x": "\\ud800"}}', b'{"requestData": {"\\ud800": "\\ud800"}}',
                     b'{"sdp": "v=0", "type": "offer", "requestData": {"x": "\\ud800"}}',
                     b'{"From": "\\ud800", "To": "+1", "callId": "c", "callDomain": "d",'
                     b' "sipHeaders": {"X": "\\udc00"}}']),
)
header_text = st.text(alphabet=string.printable.strip() + " ", max_size=80)
session_ids = st.one_of(
    st.text(alphabet="0123456789abcdef", min_size=24, max_size=24),
    st.text(alphabet=string.ascii_letters + string.digits + "-_.~%", min_size=1, max_size=40),
    # Any printable text (a client cannot even send control characters in a URL).
    st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=30).map(
        lambda t: t.replace("/", "").replace("?", "").replace("#", "") or "x"
    ),
    # Shapes hypothesis rarely reaches by itself: encodings, traversal, huge, non-ASCII.
    st.sampled_from(["..", "%00", "a-b", "%2F", "%ff", "é", "0" * 2000, "A" * 24, "0x" + "0" * 22]),
)
def documented_operations() -> list[tuple[str, str]]:
    """Every (method, path) of the dispatcher's OpenAPI document, so a new route is fuzzed too."""
    app = create_app(Settings(), env={}, machines=LocalMachines(), rooms=None)
    return sorted(
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    )


DOCUMENTED = documented_operations()
routes = st.sampled_from([
    *DOCUMENTED,
    ("POST", "/start?wait=started"), ("POST", "/start?wait=x"),  # query parameters
    ("GET", "/usage?until=0001-01-01"), ("GET", "/usage?until=0001-01-09&since=9d"),  # before year 1
    ("GET", "/"), ("GET", "/openapi.json"), ("PUT", "/start"), ("GET", "/nope"),  # off the document
    ("POST", "/api/offer"), ("POST", "/phone/daily/dialin"),  # where a body reaches a start without /start
])  # fmt: skip


@pytest.fixture
async def fuzz_client():
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=1, bot_env=STANDIN_ENV))
    app = create_app(Settings(max_concurrent_sessions=3, start_wait_seconds=2), env={}, machines=machines, rooms=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        yield client
    await app.state.voicefleet.aclose()


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=routes, session_id=session_ids, body=bodies, key=header_text, idem=st.none() | header_text,
       content_type=st.sampled_from(["application/json", "text/plain", ""]))  # fmt: skip
async def test_no_request_gets_a_5xx(fuzz_client, route, session_id, body, key, idem, content_type):
    method, path = route
    headers = {"Authorization": key}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    if content_type:
        headers["Content-Type"] = content_type
    response = await fuzz_client.request(
        method, path.replace("{session_id}", session_id), content=body, headers=headers
    )
    assert response.status_code < 500 or response.status_code in (502, 503, 504), response.text
    assert "Traceback" not in response.text
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/json"):
        error = response.json()
        assert set(error) == {"error", "detail"}
        assert error["detail"] == error["error"]["message"]



def test_the_fuzzer_covers_the_whole_openapi_document():
    assert {("POST", "/start"), ("GET", "/sessions/{session_id}"), ("DELETE", "/sessions/{session_id}"),
            ("POST", "/sessions/{session_id}/api/offer"), ("PATCH", "/sessions/{session_id}/api/offer"),
            ("GET", "/healthz"), ("GET", "/metrics")} <= set(DOCUMENTED)  # fmt: skip


# Each JSON body that starts a session without `/start` (the runner's offer; Daily's dial-in webhook, its
# From and SIP headers chosen by whoever calls), a lone surrogate in it, with Daily's rooms behind it.
SURROGATE_STARTS = [
    ("/api/offer", {"sdp": "v=0", "type": "offer", "requestData": {"x": "\ud800"}}),
    ("/api/offer", {"sdp": "v=0", "type": "offer", "requestData": {"\udfff": ["a\ud800b"]}}),
    ("/phone/daily/dialin", {"From": "\ud800", "To": "+14155550199", "callId": "call-s1", "callDomain": "d"}),
    ("/phone/daily/dialin", {"From": "+1", "To": "+2", "callId": "call-s2", "callDomain": "d",
                             "sipHeaders": {"X-Who": "\udc00"}}),
]


@pytest.mark.parametrize(("path", "payload"), SURROGATE_STARTS)
async def test_a_lone_surrogate_in_any_start_body_is_never_a_5xx(fake_daily, tmp_path, path, payload):
    env = {**fake_daily.env, "TRANSPORTS": "webrtc,daily", "LOCAL_BOT_COMMAND": " ".join(STANDIN_BOT),
           **STANDIN_LOCAL_BOT_ENV}
    app = create_app(Settings.from_env(env), env=env)
    try:
        async with serving(app):  # the offer reaches its bot over a loopback port
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
                content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()  # as escapes
                call = json.loads(content)
                if "callId" in call:
                    fake_daily.hold_call(call["callId"], call["callDomain"])
                answer = await http.post(path, content=content, headers={"Content-Type": "application/json"})
                assert answer.status_code in (200, 201), answer.text  # the call or the offer goes on
                if "Location" in answer.headers:  # a dial-in's session is the phone's, read with its key
                    for read in (answer.headers["Location"], answer.headers["Location"] + "/timeline"):
                        assert (await http.get(read)).status_code == 200
    finally:
        await app.state.voicefleet.aclose()


# Bodies json.loads(bytes) reads but that are not UTF-8, a lone surrogate in each: a surrogate's own
# bytes (ED A0 80, no escape), and UTF-16 and UTF-32, which carry one with neither an escape nor ED.
UTF16_CALL = {"From": "\ud800", "To": "+14155550199", "callId": "call-u16", "callDomain": "d",
              "sipHeaders": {"X-Who": "a\udc00"}}
DIALIN_NOT_UTF8 = {"raw ED A0 80": b'{"From": "\xed\xa0\x80", "To": "+2", "callId": "call-s3", "callDomain": "d"}',
                   **{codec: json.dumps(UTF16_CALL, ensure_ascii=False).encode(codec, "surrogatepass")
                      for codec in ("utf-16-le", "utf-16-be", "utf-32-le")}}


@pytest.mark.parametrize("body", DIALIN_NOT_UTF8.values(), ids=DIALIN_NOT_UTF8.keys())
async def test_a_dialin_body_that_is_not_utf8_is_refused_400_naming_utf8(fake_daily, body):
    env = {**fake_daily.env, "TRANSPORTS": "webrtc,daily", "LOCAL_BOT_COMMAND": " ".join(STANDIN_BOT),
           **STANDIN_LOCAL_BOT_ENV}
    app = create_app(Settings.from_env(env), env=env)
    try:
        async with serving(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
                fake_daily.hold_call("call-u16", "d")
                fake_daily.hold_call("call-s3", "d")
                answer = await http.post("/phone/daily/dialin", content=body,
                                         headers={"Content-Type": "application/json"})
                assert answer.status_code == 400, answer.text
                assert answer.json()["error"]["code"] == "invalid_json" and "UTF-8" in answer.text
    finally:
        await app.state.voicefleet.aclose()
