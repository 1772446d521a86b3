"""A project without aiortc (as pipecat-examples' deployment/modal-example locks it) whose file defines
`run_bot(room_url, token)` but no `bot(runner_args)`: the session's error names the missing `bot`, the
problem to fix first, and not the aiortc a Daily bot never needs (the `bot()` it gets decides its
transport)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.http_client import api_client
from tests.support.processes import run_dispatcher
from tests.support.venvs import venv_without

pytestmark = pytest.mark.slow  # a real bot process importing Pipecat

MODAL_SHAPED = '''
from pipecat.transports.daily.transport import DailyParams, DailyTransport


async def run_bot(room_url: str, token: str) -> None:
    DailyTransport(room_url, token, "bot", DailyParams(audio_out_enabled=True))
'''


async def test_a_session_names_the_missing_extra_and_the_missing_bot_together(tmp_path: Path) -> None:
    bot_file = tmp_path / "project" / "bot_openai.py"
    bot_file.parent.mkdir()
    bot_file.write_text(MODAL_SHAPED)
    python = venv_without(tmp_path / "venv", "aiortc")
    env = {"BOT_FILE": str(bot_file), "BOT_PYTHON": str(python), "RESERVE_MIN_IDLE": "0", "RESERVE_MAX_IDLE": "0"}
    with run_dispatcher(tmp_path, env) as dispatcher:
        async with api_client(base_url=dispatcher.base_url, timeout=120) as api:
            answer = await api.post("/start?wait=started", json={})
    assert answer.status_code == 502, answer.text
    message = answer.json()["error"]["message"]
    assert "defines no `bot` (Pipecat's entry point: async def bot(runner_args))" in message, message
    assert "aiortc" not in message, message
