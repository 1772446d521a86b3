"""BOT_ENV_FILE: an agent-sandbox pod's session values, read from its downward API file at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.launch_file import LaunchFileError, merge_launch_file


def test_the_files_values_join_the_environment_where_it_has_none(tmp_path: Path) -> None:
    values = tmp_path / "bot-env"
    values.write_text('{"VOICEFLEET_SESSION_ID": "s1", "BOT_CHANNEL_TOKEN": "c", "BOT_TRANSPORT": "webrtc"}')
    env = {"BOT_ENV_FILE": str(values), "BOT_TRANSPORT": "daily"}
    merge_launch_file(env)
    assert env["VOICEFLEET_SESSION_ID"] == "s1" and env["BOT_CHANNEL_TOKEN"] == "c"
    assert env["BOT_TRANSPORT"] == "daily"  # the environment's own wins


def test_an_unset_variable_or_an_empty_file_adds_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "bot-env"
    empty.write_text("")  # the annotation not set (yet): the kubelet writes an empty file
    for env in ({}, {"BOT_ENV_FILE": str(empty)}):
        before = dict(env)
        merge_launch_file(env)
        assert env == before


def test_an_unreadable_or_malformed_file_is_refused_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(LaunchFileError, match="downward API volume"):
        merge_launch_file({"BOT_ENV_FILE": str(tmp_path / "missing")})
    bad = tmp_path / "bot-env"
    bad.write_text('{"VOICEFLEET_SESSION_ID": 3}')
    with pytest.raises(LaunchFileError, match="JSON object of strings"):
        merge_launch_file({"BOT_ENV_FILE": str(bad)})
