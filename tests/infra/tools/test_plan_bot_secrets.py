"""The plan reads a stack file's `botSecrets` as `pulumi config set --secret --path 'botSecrets.NAME'`
writes it: a map whose leaves are each `secure:` (Pulumi's sdk/go/common/resource/config map.go
`Set` with a path), which the CLI hands the program as one secret object of JSON."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stacks.tools import paths
from stacks.tools import plan as plan_module
from stacks.tools.plan import main, stack_config
from stacks.tools.preflight.cli_config import StackValue, stack_values

# Exactly what `pulumi config set --secret --path 'botSecrets.DEEPGRAM_API_KEY' …` (then OPENAI_API_KEY) writes.
WRITTEN_BY_PULUMI = """\
  voicefleet:botSecrets:
    DEEPGRAM_API_KEY:
      secure: v1:3b9Qk1QmN0Lx7y2d:Jt1m0Jf2Yk8m3Q==
    OPENAI_API_KEY:
      secure: v1:Wz7kP0q8Yh2rA1bc:0pZl9sQ4Rr3v6A==
"""


@pytest.fixture
def stack_with_path_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    original = paths.stack_file("aws-dev").read_text()
    (tmp_path / "Pulumi.aws-dev.yaml").write_text(original.replace("config:\n", "config:\n" + WRITTEN_BY_PULUMI, 1))
    monkeypatch.setattr(paths, "STACK_FILES", tmp_path)
    monkeypatch.setattr(plan_module, "REPOSITORY", tmp_path)
    return "aws-dev"


def test_a_map_of_secure_leaves_is_one_secret_object_as_the_program_gets_it(stack_with_path_secrets: str) -> None:
    config, secret_keys = stack_config(stack_with_path_secrets)
    assert "voicefleet:botSecrets" in secret_keys
    assert yaml.safe_load(config["voicefleet:botSecrets"]) == {"DEEPGRAM_API_KEY": "[secret]",
                                                               "OPENAI_API_KEY": "[secret]"}


def test_the_plan_passes_a_stack_whose_bot_secrets_were_set_with_path(
        stack_with_path_secrets: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([stack_with_path_secrets]) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    # Each name reaches the bot by reference; no value is in the plan.
    assert "DEEPGRAM_API_KEY" in text and "OPENAI_API_KEY" in text and "v1:" not in text


def test_the_preflight_holds_a_map_of_secure_leaves_as_one_secure_value() -> None:
    values = stack_values(yaml.safe_load("config:\n" + WRITTEN_BY_PULUMI))
    assert values["voicefleet:botSecrets"] == StackValue({"DEEPGRAM_API_KEY": "<ciphertext>",
                                                          "OPENAI_API_KEY": "<ciphertext>"}, secure=True)


def test_a_bot_secret_set_without_secret_beside_secure_ones_is_refused_without_its_value(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`pulumi config set --path 'botSecrets.X' v` (no --secret) beside secure leaves: the CLI hands the
    program the whole object as one secret, so only the stack file shows the plain text."""
    original = paths.stack_file("aws-dev").read_text()
    forgot = WRITTEN_BY_PULUMI + "    CARTESIA_API_KEY: SENTINEL-plain-key\n"
    (tmp_path / "Pulumi.aws-dev.yaml").write_text(original.replace("config:\n", "config:\n" + forgot, 1))
    monkeypatch.setattr(paths, "STACK_FILES", tmp_path)
    monkeypatch.setattr(plan_module, "REPOSITORY", tmp_path)
    assert main(["aws-dev"]) == 2
    said = capsys.readouterr().err
    assert "botSecrets.CARTESIA_API_KEY is in plain text" in said
    assert "pulumi config set --secret --path 'botSecrets.CARTESIA_API_KEY'" in said
    assert "SENTINEL" not in said
