"""`voicefleet keys limit`: a budget that is no number is refused before any call, naming the way
forward; naming no budget is a usage error that lists them."""

from __future__ import annotations

from click.testing import CliRunner

from voicefleet.main import voicefleet

ENV = {"VOICEFLEET_URL": "http://127.0.0.1:9", "VOICEFLEET_ADMIN_KEY": "vf-admin-never-called-5e1c"}


def test_a_budget_of_lots_is_refused_before_any_call() -> None:
    result = CliRunner().invoke(voicefleet, ["keys", "limit", "acme", "--minutes-day", "lots"], env=ENV)
    assert result.exit_code == 2, result.output
    assert "'lots' is not a budget: send a whole number (e.g. 600), or none to remove it" in result.output
    assert "Traceback" not in result.output


def test_naming_no_budget_lists_them() -> None:
    result = CliRunner().invoke(voicefleet, ["keys", "limit", "acme"], env=ENV)
    assert result.exit_code == 2, result.output
    assert "--minutes-day, --minutes-month, --spend-month, --sessions" in result.output
