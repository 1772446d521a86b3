"""The plan knows each realtime vendor's session cap and names a `maxSessionSeconds` past the cap of
the service the bot project imports, where Pipecat would not carry the call past it: OpenAI's hour,
and Gemini Live's 15 minutes of an audio-only session without context window compression; a local
`voicefleet config check` says the same of BOT_FILE and MAX_SESSION_SECONDS."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.config.realtime_caps import CAPS, caps_of
from tests.images.test_bot_project import project
from tests.infra.conftest import SECRETS, StackRunner

REALTIME_BOT = "from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService\n"
GEMINI_BOT = "from pipecat.services.google.gemini_live.llm import GeminiLiveLLMService\n"
COMPRESSED = ("settings = GeminiLiveLLMService.Settings(context_window_compression={'enabled': True})\n"
              "settings.context_window_compression = None\n")  # set once with a value: compression is on


def bot_importing(tmp_path: Path, line: str, *, in_module: bool = False) -> Path:
    folder = project(tmp_path)
    if in_module:  # the service is imported by one of the bot's own modules, not bot.py itself
        (folder / "model.py").write_text(line)
        line = "import model\n"
    (folder / "bot.py").write_text(line + (folder / "bot.py").read_text())
    return folder


def plan_messages(stack: StackRunner, monkeypatch: pytest.MonkeyPatch, folder: Path, seconds: int) -> dict[str, list]:
    said: dict[str, list[str]] = {"warn": [], "info": []}
    for level in said:
        monkeypatch.setattr(f"pulumi.log.{level}", lambda m, *a, _l=level, **k: said[_l].append(str(m)))
    stack("aws", botProject=str(folder), maxSessionSeconds=str(seconds), secrets=SECRETS)
    return {level: [m for m in messages if "session cap" in m] for level, messages in said.items()}


def test_every_cap_is_cited_and_found_by_the_services_package() -> None:
    assert all(cap.source.startswith("https://") and cap.cap_seconds > 0 for cap in CAPS)
    found = caps_of({"pipecat.services.openai.realtime.llm.OpenAIRealtimeLLMService", "pipecat.frames"})
    assert [cap.vendor for cap in found] == ["OpenAI Realtime"]
    assert caps_of({"pipecat.services.openai.llm", "pipecat.services.openai.realtime_beta"}) == []


@pytest.mark.parametrize("in_module", [False, True])
def test_a_session_longer_than_openais_cap_is_named_with_the_way_forward(
        stack: StackRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_module: bool) -> None:
    said = plan_messages(stack, monkeypatch, bot_importing(tmp_path, REALTIME_BOT, in_module=in_module), 5400)
    (warning,) = said["warn"]
    assert "maxSessionSeconds = 5400 is longer than OpenAI Realtime's session cap of 3600 s" in warning
    assert "OpenAIRealtimeLLMService" in warning and "pulumi config set maxSessionSeconds 3600" in warning


def test_a_session_within_the_cap_or_a_bot_without_a_realtime_service_is_not_named(
        stack: StackRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert plan_messages(stack, monkeypatch, bot_importing(tmp_path / "a", REALTIME_BOT), 3600) == {
        "warn": [], "info": []}
    assert plan_messages(stack, monkeypatch, project(tmp_path / "b"), 5400) == {"warn": [], "info": []}


def test_a_cap_pipecat_resumes_past_is_noted_not_warned(
        stack: StackRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    said = plan_messages(stack, monkeypatch, bot_importing(tmp_path, GEMINI_BOT), 800)
    assert said["warn"] == [] and len(said["info"]) == 1
    assert "Gemini Live's session cap of 600 s (per connection" in said["info"][0] and "resumes" in said["info"][0]


def test_gemini_past_15_minutes_without_context_window_compression_is_warned(
        stack: StackRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    said = plan_messages(stack, monkeypatch, bot_importing(tmp_path / "a", GEMINI_BOT), 1800)
    (warning,) = said["warn"]
    assert "Gemini Live's session cap of 900 s (an audio-only session without context window compression" in warning
    assert "pulumi config set maxSessionSeconds 900" in warning and "context_window_compression" in warning
    compressed = plan_messages(stack, monkeypatch, bot_importing(tmp_path / "b", GEMINI_BOT + COMPRESSED), 1800)
    assert compressed["warn"] == [] and len(compressed["info"]) == 1, compressed


def test_a_local_config_check_names_the_bot_files_cap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dispatcher.serving.config_command import main

    bot = str(bot_importing(tmp_path, GEMINI_BOT) / "bot.py")
    assert main(["check"], {"BOT_FILE": bot}) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert len(notes) == 1, notes
    assert "MAX_SESSION_SECONDS = 1800 is longer than Gemini Live's session cap of 900 s" in notes[0]
    assert "`MAX_SESSION_SECONDS=900`" in notes[0], notes
    assert main(["check"], {"BOT_FILE": bot, "MAX_SESSION_SECONDS": "900"}) == 0
    assert "note:" not in capsys.readouterr().out
    realtime = Path(__file__).resolve().parents[3] / "examples" / "realtime" / "bot.py"  # it compresses
    assert main(["check"], {"BOT_FILE": str(realtime)}) == 0
    assert "note:" not in capsys.readouterr().out


def test_config_check_names_a_session_longer_than_the_bots_realtime_cap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from stacks.tools.config_check import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no kept answer, the user's cache untouched
    main(["check", "--stack", "aws-dev", "--config", "botProject=examples/realtime",
          "--config", "maxSessionSeconds=5400"])
    notes = [line for line in capsys.readouterr().out.splitlines() if "session cap" in line]
    assert len(notes) == 1 and notes[0].startswith("aws-dev: note: voicefleet:maxSessionSeconds = 5400 is longer "
                                                   "than OpenAI Realtime's session cap of 3600 s"), notes
    main(["check", "--stack", "aws-dev", "--config", "botProject=examples/realtime",
          "--config", "maxSessionSeconds=3600"])
    assert "session cap" not in capsys.readouterr().out
