"""`voicefleet eval` prints what a bot said and what an LLM judge answered (a failing turn's reason):
a C1 control (U+009B is a CSI), a bidirectional override or an ESC sequence in it is shown as its
escape in the table and in the failure line, never run by the terminal; its JUnit file stays XML
that parses."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.server import FakeServer
from voicefleet.evals import run as run_module
from voicefleet.evals.outcome import CallResult, TurnResult
from voicefleet.evals.report import table
from voicefleet.main import voicefleet

HOSTILE = "\x9b2J\x9d8;;https://evil.example/\x9cLINK cost \u202e0.01\u202c USD \u2066x\u2069 \x1b]52;c;cm0=\x07"
RAW = ("\x9b", "\x9d", "\x9c", "\u202e", "\u202c", "\u2066", "\u2069", "\x1b", "\x07")


def hostile_result() -> CallResult:
    """A call whose turn failed with a judge's reason and an error a bot recorded, both hostile."""
    result = CallResult(scenario="greets", source="greets.toml", session_id="s1")
    result.turns.append(TurnResult(said="hello", heard="", latency_ms=None, problems=[f"rubric 'polite': {HOSTILE}"]))
    result.problems.append(f"the session recorded an error: {HOSTILE}")
    return result


def test_the_table_shows_a_failures_escapes_rather_than_running_them() -> None:
    shown = table([hostile_result()])
    assert not any(char in shown for char in RAW), shown
    assert "\\x9b2J" in shown and "\\u202e0.01" in shown


def test_the_failure_line_shows_a_failures_escapes_rather_than_running_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def ran(*_args: Any, **_kwargs: Any) -> list[CallResult]:  # the calls' outcome, not their audio
        return [hostile_result()]

    monkeypatch.setattr(run_module, "run_suite", ran)
    scenario = tmp_path / "greets.toml"
    scenario.write_text('[[turns]]\nsay = "hello"\nexpect = { contains = ["welcome"] }\n')
    health = Starlette(routes=[Route("/healthz", lambda _: JSONResponse({"status": "ok"}))])
    with FakeServer(health) as dispatcher:
        result = CliRunner().invoke(voicefleet, ["eval", str(scenario), "--url", dispatcher.url],
                                    env={"VOICEFLEET_API_KEY": None, "VOICEFLEET_URL": None})
    assert result.exit_code == 1, result.output
    assert "calls failed; the first: greets" in result.output and "\\u202e0.01" in result.output, result.output
    assert not any(char in result.output for char in RAW), result.output


def test_the_junit_file_parses_with_a_failure_holding_what_xml_cannot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def ran(*_args: Any, **_kwargs: Any) -> list[CallResult]:
        result = hostile_result()
        result.problems.append("a judge's reason with a NUL\x00 and a lone surrogate \ud800")
        return [result]

    monkeypatch.setattr(run_module, "run_suite", ran)
    scenario, junit_file = tmp_path / "greets.toml", tmp_path / "eval.xml"
    scenario.write_text('[[turns]]\nsay = "hello"\nexpect = { contains = ["welcome"] }\n')
    health = Starlette(routes=[Route("/healthz", lambda _: JSONResponse({"status": "ok"}))])
    with FakeServer(health) as dispatcher:
        result = CliRunner().invoke(voicefleet, ["eval", str(scenario), "--url", dispatcher.url,
                                                 "--junit", str(junit_file)],
                                    env={"VOICEFLEET_API_KEY": None, "VOICEFLEET_URL": None})
    assert result.exit_code == 1, result.output
    failure = ElementTree.parse(junit_file).getroot().find("testcase/failure")
    assert failure is not None and failure.text is not None
    assert "\\x1b]52" in failure.get("message", "") and "NUL\\x00 and a lone surrogate \\ud800" in failure.text
    assert "\x9b2J" in failure.text  # XML holds a C1: kept as the bot sent it, escaped where the table prints it
