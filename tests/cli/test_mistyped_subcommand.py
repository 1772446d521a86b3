"""A mistyped subcommand of `voicefleet session` (`session sotp ID`) is said to be one, with the
command meant, before any call, rather than read as a session id to show with an extra argument;
a session id still shows the session."""

from __future__ import annotations

from click.testing import CliRunner

from voicefleet.main import voicefleet

ENV = {"VOICEFLEET_URL": "http://127.0.0.1:9", "VOICEFLEET_API_KEY": "vf-never-called-2d8e1b"}
SESSION_ID = "0123456789abcdef01234567"


def test_session_sotp_id_says_did_you_mean_stop() -> None:
    result = CliRunner().invoke(voicefleet, ["session", "sotp", SESSION_ID], env=ENV)
    assert result.exit_code == 2, result.output
    assert f"no such command 'sotp': did you mean 'stop'? (`voicefleet session stop {SESSION_ID}`)" in result.output
    assert "unexpected extra argument" not in result.output


def test_a_session_id_is_still_a_session_to_show() -> None:
    result = CliRunner().invoke(voicefleet, ["session", SESSION_ID], env=ENV)
    assert "no such command" not in result.output  # it tried to show it (no dispatcher here: exit 3)
    assert result.exit_code == 3, result.output
