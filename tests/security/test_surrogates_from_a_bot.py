"""Finding: JSON lets a bot send a lone surrogate (`"\\ud800"`), which UTF-8 cannot encode. One in its
usage rows' names or in its error's detail was kept as sent, and the session's JSON could no longer be
written: `GET /sessions/{id}` and its timeline answered 500 with a traceback, for the session's key
and the admin. Now every string a frame carries is made UTF-8-safe where the channel parses it
(botchannel/contract.py): each lone surrogate is U+FFFD, and the session reads as any other.
A real dispatcher (its channel on a loopback port), a stand-in bot process sending the surrogates."""

from __future__ import annotations

import logging
import time

import pytest

from botchannel.contract import ProtocolError, Request, parse_frame
from botchannel.usage import UsageError, parse_usage
from dispatcher.settings import Settings, hash_api_key
from tests.security.conftest import KEY_A, WAIT, Dispatcher, MakeDispatcher
from tests.support.waiting import within

ADMIN_KEY = "surrogates-admin-key-0123456789"
A, ADMIN = {"Authorization": f"Bearer {KEY_A}"}, {"Authorization": f"Bearer {ADMIN_KEY}"}


async def started_session(make_dispatcher: MakeDispatcher, wait: str = "?wait=started") -> tuple[Dispatcher, str]:
    """A dispatcher with key A and an admin key, and a session of key A's, its bot started (`wait=""`:
    launched, for a bot that may end before the start is answered)."""
    d = await make_dispatcher(Settings(api_key_hashes=frozenset({hash_api_key(KEY_A)}),
                                       admin_key_hashes=frozenset({hash_api_key(ADMIN_KEY)}),
                                       max_concurrent_sessions=5))
    started = await d.client.post(f"/start{wait}", json={"body": {}}, headers=A)
    assert started.status_code == 201, started.text
    return d, started.json()["session_id"]


async def test_a_bots_lone_surrogates_leave_its_session_readable(
    make_dispatcher: MakeDispatcher, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("STANDIN_MODE", "surrogates")  # tests/dispatcher/standin_bot.py: error, then end, each with one
    d, session_id = await started_session(make_dispatcher)

    async def reported() -> tuple[dict] | None:
        answer = await d.client.get(f"/sessions/{session_id}", headers=A)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return (body,) if (body.get("cost") or {}).get("services", {}).get("reported") else None

    with caplog.at_level(logging.WARNING):
        found = await within(reported, timeout=WAIT)
        assert found is not None, "the bot's usage never reached its session"
        usage = found[0]["cost"]["services"]["usage"]
        assert sorted(row["model"] for row in usage) == ["gpt-4o-mini\ufffd", "sonic\ufffd"]
        assert found[0]["error"] == "its speech service refused\ufffd"
        timeline = await d.client.get(f"/sessions/{session_id}/timeline", headers=A)
        assert timeline.status_code == 200, timeline.text
        error = next(e for e in timeline.json()["events"] if e["event"] == "error")
        assert error["detail"] == "its speech service refused\ufffd"
        for path in (f"/sessions/{session_id}", f"/sessions/{session_id}/timeline", "/sessions"):
            assert (await d.client.get(path, headers=ADMIN)).status_code == 200, path
    assert "unhandled error" not in caplog.text and "UnicodeEncodeError" not in caplog.text


async def test_a_local_bots_stdout_surrogates_leave_its_session_readable(
    make_dispatcher: MakeDispatcher, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The local provider reads a bot's `ended` line from its stdout, not the channel: a surrogate's own
    # bytes and a `\ud800` escape there were its session's detail, and its session and timeline a 500.
    monkeypatch.setenv("STANDIN_MODE", "stdout-surrogates")
    # Not `wait=started`: on a busy host this bot's exit can come first, and the start is then a 502.
    d, session_id = await started_session(make_dispatcher, wait="")

    async def failed() -> tuple[dict] | None:
        answer = await d.client.get(f"/sessions/{session_id}", headers=A)
        assert answer.status_code == 200, answer.text
        return (answer.json(),) if answer.json()["status"] == "failed" else None

    with caplog.at_level(logging.WARNING):
        found = await within(failed, timeout=WAIT)
        assert found is not None, "the bot's exit never reached its session"
        assert found[0]["detail"] == "exit code 1: raw \ufffd\ufffd\ufffd escaped \ufffd"
        timeline = await d.client.get(f"/sessions/{session_id}/timeline", headers=A)
        assert timeline.status_code == 200, timeline.text
    assert "unhandled error" not in caplog.text and "UnicodeEncodeError" not in caplog.text


async def test_an_answer_holding_a_lone_surrogate_is_written_with_u_fffd(make_dispatcher: MakeDispatcher) -> None:
    # Whatever puts one in a session's record (here its timeline in the store, as a replica that
    # wrote it unescaped would leave it), the answer is written, each lone surrogate as U+FFFD.
    d, session_id = await started_session(make_dispatcher)
    written = {"event": "spilled", "at": round(time.time(), 3), "replica": "r-older", "from_region": "eu\ud800",
               "reason": "\udfffcold"}
    await d.state.replication.coordination.timelines.append(session_id, written)
    timeline = await d.client.get(f"/sessions/{session_id}/timeline", headers=A)
    assert timeline.status_code == 200, timeline.text
    spilled = next(e for e in timeline.json()["events"] if e["event"] == "spilled")
    assert (spilled["from_region"], spilled["reason"]) == ("eu\ufffd", "\ufffdcold")


def test_every_string_of_a_frame_is_made_utf8_safe_and_nothing_else_changes() -> None:
    frame = parse_frame('{"type": "request", "id": 1, "method": "usage.so_far", "params": {"\\udfff": '
                        '["\\ud800", {"sdp": "v=0\\r\\no=- 1 2 IN IP4 0.0.0.0\\r\\n", "pair": "\\ud83d\\ude00"}]}}')
    assert isinstance(frame, Request)
    assert frame.params == {"\ufffd": ["\ufffd", {"sdp": "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n", "pair": "😀"}]}


@pytest.mark.parametrize("name", ["gpt-4o-mini\x1b]52;c;cm0=\x07", "sonic\x9b2J", "tts\u202e", "llm\r"])
def test_a_usage_name_a_terminal_would_run_is_refused(name: str) -> None:
    row = {"kind": "tts", "processor": "CartesiaTTSService#0", "model": "sonic", "characters": 3}
    for field in ("processor", "model"):
        with pytest.raises(UsageError, match="printable characters"):
            parse_usage([{**row, field: name}])
    assert parse_usage([{**row, "model": "sonic 2 é"}])[0]["model"] == "sonic 2 é"  # spaces and letters are names


@pytest.mark.parametrize("raw", [b'{"type": "request", "id": 1, "method": "m", "params": {"x": "a\xed\xa0\x80b"}}',
                                 b'{"type": "request", "id": 1, "method": "m\xff", "params": {}}'])
def test_a_frame_of_bytes_that_are_not_utf8_is_refused(raw: bytes) -> None:
    # `json.loads(bytes)` decodes with surrogatepass: ED A0 80 (a surrogate's own bytes) was read
    # as a lone surrogate with no `\u` escape to warn of it, and kept past the check above.
    with pytest.raises(ProtocolError, match="UTF-8"):
        parse_frame(raw)
    assert isinstance(parse_frame('{"type": "request", "id": 1, "method": "m", "params": {"x": "é"}}'.encode()),
                      Request)
