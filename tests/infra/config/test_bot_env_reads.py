"""The plan reads what the bot reads from its environment (its own files, parsed, never run) and names
each variable the stack sets nothing for; a `prod` stack stops until each is given or accepted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from images.env_reads import env_reads
from images.project_imports import own_modules
from stacks.config.settings import SettingsError
from tests.images.test_bot_project import project
from tests.infra.conftest import SECRETS, StackRunner

# What pipecat-examples bots write, in every form the plan reads, and two it cannot (a computed name).
READS = '''\
import os
from os import environ, getenv as env

ENVIRONMENT = os.getenv("ENV")
REGION = os.getenv("REGION", "eu") + os.environ.get("ZONE", "a") + os.getenv("TIER", default="free")
KEY = os.environ["DEEPGRAM_API_KEY"]
VOICE = os.environ.get("CARTESIA_VOICE_ID")
MODEL = env("OPENAI_MODEL")
LIMIT = environ["MAX_SESSION_SECONDS"]
PREFIX = "TWILIO"
SID = os.getenv(PREFIX + "_ACCOUNT_SID")
'''


def bot_with_reads(tmp_path: Path) -> Path:
    folder = project(tmp_path)
    (folder / "settings.py").write_text(READS)
    (folder / "bot.py").write_text("import settings\n\n" + (folder / "bot.py").read_text())
    (folder / ".venv" / "lib").mkdir(parents=True)
    (folder / ".venv" / "lib" / "site.py").write_text('import os\nos.environ["NOT_THE_BOTS"]\n')
    # Code a session never runs (the bot imports none of it): its reads would stop a prod plan for nothing.
    for never_run in ("tests/test_bot.py", "test_local.py", "conftest.py", "examples/demo.py", "load_test.py",
                      "server.py"):
        (folder / never_run).parent.mkdir(exist_ok=True)
        (folder / never_run).write_text('import os\nos.environ["CI_ONLY"]\n')
    return folder


def test_every_literal_read_is_found_with_its_line_and_nothing_else(tmp_path: Path) -> None:
    assert env_reads(bot_with_reads(tmp_path)).reads == {
        "CARTESIA_VOICE_ID": ("settings.py:7",),
        "DEEPGRAM_API_KEY": ("settings.py:6",), "ENV": ("settings.py:4",), "MAX_SESSION_SECONDS": ("settings.py:9",),
        "OPENAI_MODEL": ("settings.py:8",)}


def test_only_the_bot_and_the_project_modules_it_imports_are_read(tmp_path: Path) -> None:
    """pipecat-examples ship a server.py (the Pipecat Cloud agent API) beside bot.py; the bot never
    imports it, so its keys are not the bot's. What bot.py imports, transitively, is."""
    folder = project(tmp_path)
    (folder / "bot.py").write_text("import helpers\nfrom tools import weather\n\nasync def bot(runner_args):\n"
                                   "    pass\n")
    (folder / "helpers.py").write_text('import os\nfrom tools.keys import token\n'
                                       'KEY = os.environ["DEEPGRAM_API_KEY"]\n')
    (folder / "tools").mkdir()
    (folder / "tools" / "__init__.py").write_text('import os\nos.getenv("TOOLS_INIT")\n')
    (folder / "tools" / "keys.py").write_text('import os\nfrom . import region\ntoken = os.getenv("WEATHER_TOKEN")\n')
    (folder / "tools" / "region.py").write_text('import os\nos.environ["WEATHER_REGION"]\n')
    (folder / "tools" / "weather.py").write_text('from os import getenv\ngetenv("WEATHER_URL")\n')
    (folder / "tools" / "unused.py").write_text('import os\nos.environ["NEVER_IMPORTED"]\n')
    (folder / "server.py").write_text('import os\nimport bot\nAPI = os.environ["PIPECAT_API_KEY"]\n'
                                      'AGENT = os.getenv("PIPECAT_AGENT_NAME")\n')
    assert env_reads(folder).reads == {
        "DEEPGRAM_API_KEY": ("helpers.py:3",), "TOOLS_INIT": ("tools/__init__.py:2",),
        "WEATHER_REGION": ("tools/region.py:2",), "WEATHER_TOKEN": ("tools/keys.py:3",),
        "WEATHER_URL": ("tools/weather.py:2",)}


def test_the_walk_of_the_bots_imports_is_bounded(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "bot.py").write_text("import chain0\n")
    for link in range(5):
        (folder / f"chain{link}.py").write_text(f'import os\nimport chain{link + 1}\nos.environ["LINK_{link}"]\n')
    assert sorted(env_reads(folder).reads) == [f"LINK_{link}" for link in range(5)]
    walked = [path.name for path, _ in own_modules(folder, max_files=3)]
    assert walked == ["bot.py", "chain0.py", "chain1.py"]


def test_a_huge_project_is_read_to_a_bound_and_what_is_left_is_named(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "bot.py").write_text("import generated\n")
    (folder / "generated.py").write_text("# " + "x" * 4000 + '\nimport os\nos.environ["FAR"]\n')
    scanned = env_reads(folder, max_bytes=4000)
    assert scanned.unread == ("generated.py",) and "FAR" not in scanned.reads
    assert "FAR" in env_reads(folder).reads


def test_a_file_too_deep_for_the_parser_is_left_to_the_build(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "bot.py").write_text("import deep\n")
    (folder / "deep.py").write_text("x = " + "-" * 200_000 + "1\n")  # RecursionError in ast.parse
    assert env_reads(folder).reads == {}


def test_a_dev_stack_names_what_the_bot_reads_and_nothing_sets(
        stack: StackRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warned: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warned.append(str(message)))
    stack("aws", botProject=str(bot_with_reads(tmp_path)),
          secrets={**SECRETS, "voicefleet:botSecrets": json.dumps({"DEEPGRAM_API_KEY": "SENTINEL-dg"})})
    (said,) = [message for message in warned if "sets nothing for" in message]
    assert "CARTESIA_VOICE_ID (settings.py:7); ENV (settings.py:4); OPENAI_MODEL (settings.py:8)" in said
    assert not {"REGION", "ZONE", "TIER", "CI_ONLY"} & set(said.replace(",", " ").replace(";", " ").split())
    # a botSecrets entry and a variable voicefleet sets itself are provided
    assert "DEEPGRAM_API_KEY" not in said and "MAX_SESSION_SECONDS" not in said
    assert "a prod stack stops here" in said


def test_a_prod_stack_stops_until_each_is_given_or_accepted(stack: StackRunner, tmp_path: Path) -> None:
    folder = str(bot_with_reads(tmp_path))
    secrets = {**SECRETS, "voicefleet:botSecrets": json.dumps({"DEEPGRAM_API_KEY": "SENTINEL-dg"})}
    with pytest.raises(SettingsError, match=r"voicefleet:botProject .* its bot reads CARTESIA_VOICE_ID, ENV, "
                                            r"OPENAI_MODEL, which this prod stack sets nothing for .*"
                                            r"pulumi config set --path 'botUnsetVariables.NAME'"):
        stack("aws", environment="prod", botProject=folder, secrets=secrets)
    with pytest.raises(SettingsError, match=r"its bot reads OPENAI_MODEL, which"):
        stack("aws", environment="prod", botProject=folder, secrets=secrets,
              botUnsetVariables=json.dumps(["ENV", "CARTESIA_VOICE_ID"]))
    stack("aws", environment="prod", botProject=folder, secrets=secrets,
          botUnsetVariables=json.dumps({"ENV": "bot.py defaults to local", "CARTESIA_VOICE_ID": "the default voice",
                                        "OPENAI_MODEL": "the default model"}))


def test_accepted_names_must_be_a_list_or_a_map_of_reasons(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="voicefleet:botUnsetVariables must be a list of variable names"):
        stack("aws", botUnsetVariables=json.dumps({"ENV": ""}))


def test_a_read_of_a_cloud_sdks_credential_points_to_bot_permissions(
        stack: StackRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warned: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warned.append(str(message)))
    folder = project(tmp_path)
    (folder / "storage.py").write_text('import os\n\nKEY = os.environ["AWS_SECRET_ACCESS_KEY"]\n')
    (folder / "bot.py").write_text("import storage\n\n" + (folder / "bot.py").read_text())
    stack("aws", botProject=str(folder))
    (said,) = [message for message in warned if "sets nothing for" in message]
    assert ("AWS_SECRET_ACCESS_KEY (storage.py:3) — the SDK's credential: grant voicefleet:botPermissions "
            "instead") in said


# A pipecat-examples bot (gemini-live-starters): Krisp unless ENV=local, decided at import.
KRISP_UNLESS_LOCAL = '''\
import os

if os.getenv("ENV") != "local":
    from pipecat.audio.filters.krisp_filter import KrispFilter
KEY = os.getenv("GOOGLE_API_KEY")
'''


def test_a_read_that_decides_an_import_is_found(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "bot.py").write_text(KRISP_UNLESS_LOCAL + (folder / "bot.py").read_text())
    found = env_reads(folder)
    assert found.imports_by == {"ENV": ("bot.py:3",)}
    assert {"ENV", "GOOGLE_API_KEY"} <= found.every


def test_a_variable_accepted_unset_that_decides_an_import_is_warned_about(
        stack: StackRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warned: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warned.append(str(message)))
    folder = project(tmp_path)
    (folder / "bot.py").write_text(KRISP_UNLESS_LOCAL + (folder / "bot.py").read_text())
    stack("aws", environment="prod", botProject=str(folder),
          secrets={**SECRETS, "voicefleet:botSecrets": json.dumps({"GOOGLE_API_KEY": "SENTINEL-google"})},
          botUnsetVariables=json.dumps({"ENV": "bot.py checks it itself"}))
    (said,) = [message for message in warned if "is accepted unset" in message]
    assert "ENV is accepted unset (voicefleet:botUnsetVariables), yet bot.py:3 decides on it what the bot imports" \
        in said and "pulumi config set --secret --path 'botSecrets.ENV'" in said


def test_secrets_the_bot_never_reads_are_named(
        stack: StackRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What import_pcc copies from a Pipecat Cloud secret set: the bot's keys, and the server's and the examples'."""
    said: list[str] = []
    monkeypatch.setattr("pulumi.log.info", lambda message, *args, **kwargs: said.append(str(message)))
    copied = {"DEEPGRAM_API_KEY": "SENTINEL-dg", "LOCAL_SERVER_URL": "SENTINEL-url",
              "DAILY_SAMPLE_ROOM_URL": "SENTINEL-room", "ENV": "SENTINEL-env"}
    stack("aws", botProject=str(bot_with_reads(tmp_path)),
          secrets={**SECRETS, "voicefleet:botSecrets": json.dumps(copied)})
    (note,) = [message for message in said if "never read" in message]
    assert "never read DAILY_SAMPLE_ROOM_URL, LOCAL_SERVER_URL, which the stack gives it as secrets" in note
    assert "pulumi config rm --path 'botSecrets.DAILY_SAMPLE_ROOM_URL'" in note
