"""An unreachable Daily API (nothing listens on its port): the dispatcher's log and the start's
refusal reason name the host it called and why it got no answer, not `GET /: HttpError`."""

from __future__ import annotations

from pathlib import Path

import httpx

from dispatcher.outbound.http_failure import shown_target
from tests.support.ports import free_port
from tests.support.processes import run_dispatcher
from tests.support.waiting import wait_until


def test_a_daily_api_that_refuses_connections_is_named_with_its_host_and_the_cause(tmp_path: Path) -> None:
    closed = free_port()  # bound and released: nothing listens on it
    env = {"TRANSPORTS": "webrtc,daily", "DAILY_API_KEY": "test-daily-key",
           "DAILY_API_URL": f"http://127.0.0.1:{closed}/v1", "DAILY_RETRY_DEADLINE_SECONDS": "1",
           "RESERVE_MAX_IDLE": "0"}
    with run_dispatcher(tmp_path, env) as dispatcher:
        answer = httpx.post(f"{dispatcher.base_url}/start", json={"transport": "daily"}, timeout=60)
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "daily_unavailable", answer.text
        assert str(closed) not in answer.text, answer.text  # the caller is told no host of the deployment's
        said = f"daily: GET http://127.0.0.1:{closed}/v1/: connection refused: nothing listens there"
        line = wait_until(lambda: next((ln for ln in dispatcher.log().splitlines() if said in ln), None),
                          "the refused Daily call in the dispatcher's log", timeout=30,
                          detail=lambda: dispatcher.log()[-3000:])
    assert "(ClientConnectorError)" in line and "HttpError" not in line, line


def test_the_target_shown_never_carries_a_query_or_credentials() -> None:
    assert shown_target("https://user:secret@api.daily.co:8443/v1/rooms?token=abc#x") == "https://api.daily.co:8443/v1/rooms"
    assert shown_target("http://[::1]:9/v1/") == "http://[::1]:9/v1/"
    assert shown_target("/v1/rooms?token=abc") == "/v1/rooms"
