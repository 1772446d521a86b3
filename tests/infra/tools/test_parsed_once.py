"""Pulumi.yaml and a stack file, parsed once per content for a check's many readers: what they read is
what a fresh parse gives, an edit is seen at once, and no reader changes another's copy."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stacks.config.project_file import PROJECT_FILE, project_config
from stacks.tools import paths


def test_the_project_file_reads_as_pyyamls_own_parser_reads_it() -> None:
    assert project_config(PROJECT_FILE) == yaml.safe_load(PROJECT_FILE.read_text())["config"]


def test_an_edited_project_file_is_parsed_again(tmp_path: Path) -> None:
    project = tmp_path / "Pulumi.yaml"
    project.write_text("name: voicefleet\nconfig:\n  voicefleet:size: {default: small}\n")
    assert project_config(project) == {"voicefleet:size": {"default": "small"}}
    project.write_text("name: voicefleet\nconfig:\n  voicefleet:size: {default: large}\n")
    assert project_config(project) == {"voicefleet:size": {"default": "large"}}


def test_a_stack_file_is_each_readers_own_and_read_again_once_edited(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "STACK_FILES", tmp_path)
    (tmp_path / "Pulumi.one.yaml").write_text("config:\n  voicefleet:recording: off\n")
    first = paths.stack_document("one")
    assert first == {"config": {"voicefleet:recording": "off"}}  # YAML 1.2: the word, not false
    first["config"]["voicefleet:recording"] = "changed by a reader"
    assert paths.stack_document("one") == {"config": {"voicefleet:recording": "off"}}
    (tmp_path / "Pulumi.one.yaml").write_text("config:\n  voicefleet:recording: on\n")
    assert paths.stack_document("one") == {"config": {"voicefleet:recording": "on"}}
