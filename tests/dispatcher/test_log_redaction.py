"""Paths that carry a secret reach uvicorn's logs masked: the Daily dial-in webhook's secret and a
carrier stream's one-time token (its payload is the client's body), through a real
`python -m dispatcher`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.processes import DispatcherProcess, run_dispatcher

DIALIN_SECRET = "dialinsecret" + "7" * 30
TOKEN = "eyJib2R5Ijp7InNlY3JldCI6InRvcCJ9fQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
QUERY_BODY = "eyJjbGllbnQiOiJib2R5LXNlY3JldCJ9"
WAIT = 30.0


@pytest.fixture
def dispatcher(tmp_path: Path) -> Iterator[DispatcherProcess]:
    env = {"DAILY_DIALIN_SECRET": DIALIN_SECRET, "RESERVE_MAX_IDLE": "0", "LOG_LEVEL": "info"}
    with run_dispatcher(tmp_path, env) as running:
        yield running


async def refused_upgrade(url: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, proxy=None, open_timeout=WAIT):
            pass
    return refused.value.response.status_code


async def test_secrets_in_request_paths_are_masked_in_uvicorns_logs(dispatcher: DispatcherProcess) -> None:
    webhook = httpx.post(f"{dispatcher.base_url}/phone/daily/dialin/{DIALIN_SECRET}", json={}, timeout=WAIT)
    assert webhook.status_code == 200  # Daily's verification ping: the secret was right
    ws = dispatcher.base_url.replace("http://", "ws://")
    assert await refused_upgrade(f"{ws}/ws/twilio/{TOKEN}") == 403  # a forged token: refused, but logged
    assert await refused_upgrade(f"{ws}/ws/generic/support/{TOKEN}?body={QUERY_BODY}") == 403
    assert await refused_upgrade(f"{ws}/ws/generic/voicefleet?token={TOKEN}") == 403  # Pipecat's client
    httpx.get(f"{dispatcher.base_url}/healthz", timeout=WAIT)  # the lines above are written by now

    log = dispatcher.log()
    assert '"POST /phone/daily/dialin/[redacted] HTTP/1.1" 200' in log, log  # control: the lines are there
    assert '"WebSocket /ws/twilio/[redacted]" 403' in log, log
    assert '"WebSocket /ws/generic/support/[redacted]?body=[redacted]" 403' in log, log
    assert '"WebSocket /ws/generic/voicefleet?token=[redacted]" 403' in log, log
    for secret in (DIALIN_SECRET, TOKEN, QUERY_BODY):
        assert secret not in log
