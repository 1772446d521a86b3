"""A reserve bot announces phone calls only when its closure can serve one: a bot project installed
without FastAPI and Starlette (a Daily-only `pipecat-ai[daily]`) still runs its own transport, and
the dispatcher never routes a call to it."""

from __future__ import annotations

import importlib.util

import pytest

from bot import websocket_mode


def test_a_closure_with_fastapi_and_starlette_announces_calls() -> None:
    assert websocket_mode.call_capabilities() == (websocket_mode.CALL_CAPABILITY,)


@pytest.mark.parametrize("missing", ["fastapi", "starlette"])
def test_a_closure_without_what_a_call_needs_announces_none(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else real(name, *a))
    assert websocket_mode.call_capabilities() == ()


def test_the_host_imports_no_starlette_until_a_call_is_attached() -> None:
    import subprocess
    import sys

    code = "import sys, bot.websocket_mode, bot.daily_mode, bot.webrtc_mode; print('starlette' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"
