"""Finding: a call token in the query string reached the request log when its name was
percent-encoded. The dispatcher reads `?%74oken=<token>` as `?token=<token>` (the query is decoded
before the token is looked up), but the log's mask matched the literal `token=` only, so uvicorn
wrote the token (whose payload is the client's `body`) into the log as sent. Same for `?body=`.
A real `python -m dispatcher`; the mask now decodes a parameter's name before deciding."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.processes import DispatcherProcess, run_dispatcher

TOKEN = "eyJib2R5Ijp7InNlY3JldCI6InRvcCJ9fQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
QUERY_BODY = "eyJjbGllbnQiOiJib2R5LXNlY3JldCJ9"
WAIT = 30.0


@pytest.fixture
def dispatcher(tmp_path: Path) -> Iterator[DispatcherProcess]:
    with run_dispatcher(tmp_path, {"RESERVE_MAX_IDLE": "0", "LOG_LEVEL": "info"}) as running:
        yield running


async def upgrade(url: str) -> int:
    """101 (a keyless dispatcher takes a `?body=` call without a token) or the refusal's status."""
    try:
        async with connect(url, proxy=None, open_timeout=WAIT):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


@pytest.mark.parametrize("query", [f"?%74oken={TOKEN}", f"?x=1&tok%65n={TOKEN}",
                                   f"?%62ody={QUERY_BODY}", f"?b%6Fdy={QUERY_BODY}&%74oken={TOKEN}"])
async def test_a_token_whose_name_is_percent_encoded_is_masked_in_the_log(
        dispatcher: DispatcherProcess, query: str) -> None:
    ws = dispatcher.base_url.replace("http://", "ws://")
    # A made-up token is refused; a `?body=` alone opens a keyless call (test_log_redaction.py).
    assert await upgrade(f"{ws}/ws/generic/voicefleet{query}") == (403 if TOKEN in query else 101)
    httpx.get(f"{dispatcher.base_url}/healthz", timeout=WAIT)  # the lines above are written by now

    log = dispatcher.log()
    assert '"WebSocket /ws/generic/voicefleet?' in log, log  # control: the line is there
    if TOKEN in query:
        assert "upgrade refused (token_" in log, log  # the dispatcher read it as the call token
    for secret in (TOKEN, QUERY_BODY):
        assert secret not in log, log
