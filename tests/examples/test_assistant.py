"""The assistant example's settings: its three keys, and endpoint overrides that reach the services."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from tests.support.examples import ASSISTANT

KEYS = {"DEEPGRAM_API_KEY": "dg", "OPENAI_API_KEY": "oa", "CARTESIA_API_KEY": "ca"}


def assistant() -> ModuleType:
    spec = importlib.util.spec_from_file_location("assistant_bot", ASSISTANT / "bot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_keys_are_named_and_no_key_value_is_shown() -> None:
    with pytest.raises(RuntimeError) as raised:
        assistant().build_services({"OPENAI_API_KEY": "oa-secret"})
    assert "missing: DEEPGRAM_API_KEY, CARTESIA_API_KEY" in str(raised.value)
    assert "oa-secret" not in str(raised.value)


def test_service_endpoints_reach_the_pipecat_services_and_default_to_the_public_apis() -> None:
    module = assistant()
    overrides = {
        "DEEPGRAM_API_URL": "ws://127.0.0.1:9001",
        "OPENAI_BASE_URL": "http://127.0.0.1:9002/v1/",
        "CARTESIA_API_URL": "http://127.0.0.1:9003",
    }
    (stt, _, llm, tts), _ = module.build_services({**KEYS, **overrides})
    assert str(llm._client.base_url) == "http://127.0.0.1:9002/v1/"
    assert tts._url == "ws://127.0.0.1:9003/tts/websocket"
    (_, _, _, default_tts), _ = module.build_services(KEYS)
    assert default_tts._url == "wss://api.cartesia.ai/tts/websocket"
