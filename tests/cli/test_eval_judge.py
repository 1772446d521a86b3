"""The optional LLM judge of a scenario's rubric (src/voicefleet/evals/judge.py), against a fake
OpenAI-compatible endpoint as strict as the real one: a verdict read from its JSON answer, and every
way it can go wrong (a wrong key, an answer that is no verdict, an endpoint down) a failed check that
says so, never a pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_chat import FakeOpenAIChat
from tests.fakes.server import serve
from voicefleet.evals import judge as judge_module
from voicefleet.evals.judge import Judge, conversation_text

pytestmark = pytest.mark.timeout(60)

CALL = conversation_text([("i want to make a booking", "How many people?"), ("four", "")])


def offers_a_time(messages: list[dict[str, Any]]) -> str:
    """A judge that passes a conversation where the bot asked how many people."""
    asked = "how many people" in messages[-1]["content"].split("Conversation:", 1)[1].lower()
    return json.dumps({"pass": asked, "reason": "it asked for the party's size" if asked else "no question"})


async def test_a_rubric_is_passed_or_failed_by_the_judges_verdict_with_its_reason() -> None:
    fake = FakeOpenAIChat("sk-judge", answer=offers_a_time)
    with serve(fake, "/v1") as server:
        async with httpx.AsyncClient() as http:
            judge = Judge(server.url, "judge-model", "sk-judge")
            passed = await judge.verdict(http, "Does the bot ask how many people?", CALL)
            failed = await judge.verdict(http, "Does the bot ask how many people?", "caller: hi\nbot: bye")
    assert passed.passed and passed.reason == "it asked for the party's size"
    assert not failed.passed and failed.reason == "no question"
    (first, _) = [call.json() for call in fake.calls]
    assert first["temperature"] == 0 and first["model"] == "judge-model" and "stream" not in first
    assert "Rubric: Does the bot ask how many people?" in first["messages"][-1]["content"]
    assert "caller: four\nbot: (nothing)" in first["messages"][-1]["content"]


async def test_a_wrong_key_an_answer_that_is_no_verdict_and_a_judge_down_each_fail_the_check() -> None:
    with serve(FakeOpenAIChat("sk-judge", answer=lambda _: "Yes, it does."), "/v1") as server:
        async with httpx.AsyncClient() as http:
            refused = await Judge(server.url, "m", "sk-wrong").verdict(http, "ok?", CALL)
            rambling = await Judge(server.url, "m", "sk-judge").verdict(http, "ok?", CALL)
    assert not refused.passed and "refused the question (HTTP 401: Incorrect API key provided.)" in refused.reason
    assert not rambling.passed and "not the JSON object" in rambling.reason


async def test_an_unreachable_judge_is_tried_a_bounded_number_of_times_then_fails_the_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(judge_module, "BACKOFF_SECONDS", 0.01)
    async with httpx.AsyncClient() as http:
        down = await Judge("http://127.0.0.1:9/v1", "m", None).verdict(http, "ok?", CALL)
    assert not down.passed and "could not be reached" in down.reason and "after 3 tries" in down.reason


def test_a_judge_half_named_is_a_usage_error_and_rubrics_without_one_are_said_to_be_skipped(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from voicefleet.main import voicefleet

    scenario = tmp_path / "hours.toml"
    scenario.write_text('[[turns]]\nsay = "hours"\nexpect = { rubric = "Does it name a time?" }\n')
    env = {"VOICEFLEET_URL": None, "VOICEFLEET_API_KEY": None, "VOICEFLEET_JUDGE_URL": None,
           "VOICEFLEET_JUDGE_MODEL": None}
    half = CliRunner().invoke(voicefleet, ["eval", str(scenario), "--url", "http://127.0.0.1:9",
                                           "--judge-url", "https://judge.example/v1"], env=env)
    assert half.exit_code == 2 and "a judge needs both --judge-url" in half.output, half.output
    unjudged = CliRunner().invoke(voicefleet, ["eval", str(scenario), "--url", "http://127.0.0.1:9"], env=env)
    assert "1 rubric not judged: name a judge with --judge-url" in unjudged.output, unjudged.output
    assert unjudged.exit_code == 3  # then the dispatcher, down, stops the run before any call


async def test_a_judge_url_with_credentials_is_never_printed_with_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(judge_module, "BACKOFF_SECONDS", 0.01)
    async with httpx.AsyncClient() as http:
        down = await Judge("http://team:s3cret@127.0.0.1:9/v1", "m", None).verdict(http, "ok?", CALL)
    assert "s3cret" not in down.reason and "http://127.0.0.1:9/v1/chat/completions" in down.reason, down.reason
