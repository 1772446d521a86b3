"""`voicefleet keys revoke --secret-id` takes an id, never a secret (src/voicefleet/keys.py): a secret pasted
there is refused before anything is sent, so it never reaches a URL, nor an access log."""

from __future__ import annotations

from click.testing import CliRunner

from voicefleet.main import voicefleet


def test_a_secret_given_as_its_id_is_refused_before_it_is_sent() -> None:
    secret = "vf_0123456789ab_Zq8" + "x" * 40  # a secret's shape
    result = CliRunner().invoke(voicefleet, ["keys", "revoke", "--secret-id", secret], prog_name="voicefleet",
                                env={"VOICEFLEET_URL": "http://127.0.0.1:9", "VOICEFLEET_ADMIN_KEY": "k" * 20})
    assert result.exit_code == 2, result.output
    assert "12 hex digits" in result.output and secret not in result.output
