"""The converged example bot picks its vendor by the key it is given: OpenAI Realtime with
OPENAI_API_KEY, Gemini Live with GOOGLE_API_KEY alone, and with neither a refusal naming both."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest
from pipecat.services.google.gemini_live.llm import GeminiLiveLLMService
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService

from tests.support.realtime_turns import REALTIME_BOT


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("converged_example_bot", REALTIME_BOT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_google_key_alone_picks_gemini_live_and_its_model(example: ModuleType) -> None:
    llm = example.build_llm({"GOOGLE_API_KEY": "AIza-key", "GEMINI_LIVE_MODEL": "models/gemini-live-x"})
    assert isinstance(llm, GeminiLiveLLMService) and llm._settings.model == "models/gemini-live-x"


def test_an_openai_key_picks_openai_realtime_even_beside_a_google_key(example: ModuleType) -> None:
    llm = example.build_llm({"OPENAI_API_KEY": "sk-key", "GOOGLE_API_KEY": "AIza-key"})
    assert isinstance(llm, OpenAIRealtimeLLMService)


def test_no_key_is_refused_naming_both(example: ModuleType) -> None:
    with pytest.raises(RuntimeError, match="OPENAI_API_KEY .* or GOOGLE_API_KEY"):
        example.build_llm({})
