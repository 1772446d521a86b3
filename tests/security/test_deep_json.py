"""Finding: a JSON body nested past the parser's recursion limit (2,000 `[`, 4 KB) raised
RecursionError, which `except ValueError` does not catch: `POST /phone/daily/{any}/dialin/pinlessCallUpdate`
answered an unauthenticated 500 with an 11 KB traceback in the log, before any credential was checked.
Every parser of outside JSON now goes through botchannel/json_input.py, where such a nesting is
bad JSON like any other: a 400 `invalid_json` on each route, a refusal or a skipped frame elsewhere."""

from __future__ import annotations

import base64
import logging
import sys
from collections.abc import Callable, Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bot.http_server import HttpError, Request
from botchannel.contract import ProtocolError, parse_frame
from botchannel.json_input import MAX_DEPTH, parse_json
from dispatcher.api import region_listing
from dispatcher.phone import relay, silence
from tests.security.conftest import WAIT, MakeDispatcher

DEEP = "[" * 2000 + "]" * 2000  # 4,000 bytes: under every body cap, past json's recursion limit
DEEP_OBJECT = '{"event": "media", "media": ' + DEEP + "}"


@pytest.mark.parametrize(
    "path", ["/phone/daily/7c9f76ff97df3fb6eb5c5e0c/dialin/pinlessCallUpdate", "/phone/daily/dialin"]
)
async def test_a_deep_body_to_a_daily_webhook_is_invalid_json_before_any_credential(
    make_dispatcher: MakeDispatcher, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    d = await make_dispatcher()
    with caplog.at_level(logging.WARNING):
        answer = await d.client.post(path, content=DEEP, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_json"
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text


async def test_a_deep_query_body_on_a_keyless_stream_is_refused_not_a_500(make_dispatcher: MakeDispatcher) -> None:
    d = await make_dispatcher()
    body = base64.urlsafe_b64encode(DEEP.encode()).decode().rstrip("=")
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{d.port}/ws/generic/voicefleet?body={body}", proxy=None, open_timeout=WAIT):
            pass
    assert refused.value.response.status_code == 403  # query_body_not_base64_json, like any other bad body


def test_a_deep_channel_frame_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not JSON"):
        parse_frame('{"type": "hello", "machine_id": ' + DEEP + "}")


@pytest.mark.parametrize("is_audio", [relay.is_audio, silence.is_audio])
def test_a_deep_carrier_frame_is_no_audio_and_no_error(is_audio: object) -> None:
    assert callable(is_audio)
    assert is_audio({"type": "websocket.receive", "text": DEEP_OBJECT}) is False


def test_a_deep_cursor_is_no_cursor() -> None:
    cursor = region_listing.PREFIX + base64.urlsafe_b64encode(DEEP.encode()).decode().rstrip("=")
    assert region_listing.decode(cursor, ["eu", "us"]) is None


def test_a_deep_body_to_the_bots_own_http_server_is_invalid_json() -> None:
    with pytest.raises(HttpError) as refused:
        Request("POST", "/start", {}, DEEP.encode()).json_object()
    assert (refused.value.status, refused.value.code) == (400, "invalid_json")


@pytest.fixture
def raised_recursion_limit() -> Iterator[None]:
    """As celpy leaves the process (it sets 2,500 on import's first Environment): json.loads then
    parses 2,000 `[` without a RecursionError."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(5000)
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


@pytest.mark.usefixtures("raised_recursion_limit")
def test_deep_json_is_refused_whatever_recursion_limit_the_process_was_left_with() -> None:
    with pytest.raises(ProtocolError, match="not JSON"):
        parse_frame('{"type": "hello", "machine_id": ' + DEEP + "}")
    assert relay.is_audio({"type": "websocket.receive", "text": DEEP_OBJECT}) is False
    assert (
        region_listing.decode(
            region_listing.PREFIX + base64.urlsafe_b64encode(DEEP.encode()).decode().rstrip("="), ["eu"]
        )
        is None
    )


@pytest.mark.parametrize("data", [str, str.encode])
def test_the_nesting_allowed_is_the_modules_own_limit(data: Callable[[str], str | bytes]) -> None:
    def nested(depth: int) -> str:
        return '{"a": ' * (depth - 1) + '["[{", {"b": "]]"}]' + "}" * (depth - 1)

    assert parse_json(data(nested(MAX_DEPTH - 1)))  # the last level is the `{"b": ...}` inside the array
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json(data(nested(MAX_DEPTH)))
    assert parse_json(data('["' + "[" * 500 + '"]')) == ["[" * 500]  # brackets in a string nest nothing
