"""Finding: the local folder store's signed paths reached the request log whole. A download path
`/recordings/files/<token>` reads its recording for as long as the token lives (up to a week), and
`/bots/recordings/parts/<token>` writes a part of it; uvicorn logged both as sent. A real
`python -m dispatcher` recording to a folder; its log masks the token, as it masks a call token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dispatcher.artifacts.signed_paths import FILE_PATH, PART_PATH
from tests.support.processes import DispatcherProcess, run_dispatcher

# The shape of a signed path's token: its claims (base64url JSON) and their MAC.
TOKEN = "eyJrZXkiOiJyZWNvcmRpbmdzL3NlY3JldC5tNGEiLCJvcCI6InJlYWQifQ.bWFjLW9mLXRoZS10b2tlbi1zZWNyZXQ"
WAIT = 30.0


@pytest.fixture
def dispatcher(tmp_path: Path) -> Iterator[DispatcherProcess]:
    env = {"RESERVE_MAX_IDLE": "0", "LOG_LEVEL": "info", "RECORDING": "on",
           "RECORDING_DESTINATION": str(tmp_path / "recordings")}
    with run_dispatcher(tmp_path, env) as running:
        yield running


@pytest.mark.parametrize(("method", "path"), [("GET", FILE_PATH), ("PUT", PART_PATH)])
def test_a_signed_recording_path_is_masked_in_the_request_log(
        dispatcher: DispatcherProcess, method: str, path: str) -> None:
    answer = httpx.request(method, f"{dispatcher.base_url}{path}{TOKEN}", content=b"x" if method == "PUT" else None,
                           timeout=WAIT)
    assert answer.status_code in (403, 404), answer.text  # a made-up token opens nothing
    httpx.get(f"{dispatcher.base_url}/healthz", timeout=WAIT)  # the lines above are written by now

    log = dispatcher.log()
    assert f'"{method} {path}' in log, log  # control: the request's line is there
    assert TOKEN not in log and TOKEN.split(".")[1] not in log, log
