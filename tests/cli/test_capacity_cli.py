"""`voicefleet capacity set`'s arguments, read into one PATCH body (src/voicefleet/capacity.py); a bad pair is
one line naming the way forward, before anything is sent."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from voicefleet.capacity import changes_of
from voicefleet.main import voicefleet


def test_several_pairs_are_one_change_and_default_returns_to_the_setting() -> None:
    assert changes_of(("sessions=200", "reserve.max=20", "key.acme=0.5", "reserve.target=default")) == {
        "sessions": 200, "reserve.max": 20, "key.acme": 0.5, "reserve.target": None}


@pytest.mark.parametrize("pair", ["sessions", "=3", "sessions=", "sessions=lots"])
def test_a_pair_that_is_not_name_value_is_refused(pair: str) -> None:
    with pytest.raises(click.BadParameter):
        changes_of((pair,))


def test_the_command_refuses_a_bad_pair_in_one_line_without_a_dispatcher() -> None:
    result = CliRunner().invoke(voicefleet, ["capacity", "set", "sessions=lots"], prog_name="voicefleet",
                                env={"VOICEFLEET_URL": "http://127.0.0.1:9", "VOICEFLEET_ADMIN_KEY": "k" * 20})
    assert result.exit_code == 2
    assert "is not a number" in result.output
