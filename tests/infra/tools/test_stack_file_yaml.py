"""The stack tools read a stack file as the Pulumi CLI does: YAML 1.2 (gopkg.in/yaml.v3, in
sdk/go/common/encoding/marshal.go), where a bare `off` is the word `off`; YAML 1.1 (PyYAML's own
default) would read it as false, which `recording` refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.tools import config_check
from stacks.tools.plan import stack_config
from tests.infra.tools.secure_stack import write_stack


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_a_bare_off_is_the_word_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    stack = write_stack(tmp_path, monkeypatch, "aws-dev", "", {"recording": "off", "recordingTranscript": "off"})
    config, _ = stack_config(stack)
    assert (config["voicefleet:recording"], config["voicefleet:recordingTranscript"]) == ("off", "off")
    config_check.main(["check", "--stack", stack])
    out = capsys.readouterr().out
    assert "recording" not in out, out  # neither refused nor named
