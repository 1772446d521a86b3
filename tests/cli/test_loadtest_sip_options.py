"""`voicefleet loadtest --transport sip`'s options refused before any call, each naming the way: the
edge's URI missing or malformed, given without `--transport sip`, or off this machine without
`--allow-remote`. No dispatcher is needed: nothing is sent."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from voicefleet.main import voicefleet

LOCAL = "http://127.0.0.1:9"  # nothing listens: a refusal comes before the dispatcher is asked


def loadtest(*args: str) -> Result:
    return CliRunner().invoke(voicefleet, ["loadtest", "--url", LOCAL, *args], prog_name="voicefleet",
                              env={"VOICEFLEET_API_KEY": None, "VOICEFLEET_URL": None})


@pytest.mark.parametrize(("args", "said"), [
    (["--transport", "sip"], "--transport sip calls the SIP edge named by --sip-uri"),
    (["--sip-uri", "sip:+14155550199@127.0.0.1:5060"], "pass both or neither"),
    (["--transport", "sip", "--sip-uri", "+14155550199@127.0.0.1"], "write sip:NUMBER@HOST:PORT"),
    (["--transport", "sip", "--sip-uri", "sip:+14155550199@127.0.0.1:70000"], "write sip:NUMBER@HOST:PORT"),
    (["--transport", "sip", "--sip-uri", "sip:+14155550199@203.0.113.9:5060"], "Pass --allow-remote"),
])
def test_bad_sip_options_are_usage_errors_naming_the_way(args: list[str], said: str) -> None:
    result = loadtest(*args)
    assert result.exit_code == 2, result.output
    assert said in result.output and "Traceback" not in result.output
