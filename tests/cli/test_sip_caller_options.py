"""`voicefleet loadtest --transport sip`'s and `voicefleet eval`'s SIP options refused before any call,
each naming the way: the edge's URI missing or malformed, given without `--transport sip`, off this
machine without `--allow-remote`. No dispatcher is needed: nothing is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from voicefleet.loadtest.own_cost import OwnCost
from voicefleet.loadtest.record import SessionRecord
from voicefleet.loadtest.result import tables
from voicefleet.loadtest.summary import summarise
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


def run_eval(suite: Path, *args: str) -> Result:
    return CliRunner().invoke(voicefleet, ["eval", str(suite), "--url", LOCAL, *args], prog_name="voicefleet",
                              env={"VOICEFLEET_API_KEY": None, "VOICEFLEET_URL": None})


@pytest.mark.parametrize(("args", "said"), [
    ([], 'transport = "sip" calls the SIP edge: name it with sip_uri = "sip:'),
    (["--sip-uri", "127.0.0.1:5060"], "Invalid value for --sip-uri: '127.0.0.1:5060' is not a SIP URI"),
    (["--sip-uri", "sip:+14155550199@203.0.113.9"], "Pass --allow-remote"),
])
def test_an_eval_s_sip_scenarios_need_an_edge_on_this_machine(tmp_path: Path, args: list[str], said: str) -> None:
    suite = tmp_path / "keys.toml"
    suite.write_text('name = "keys"\ntransport = "sip"\n[[turns]]\ndtmf = "1"\n')
    result = run_eval(suite, *args)
    assert result.exit_code == 2, result.output
    assert said in result.output and "Traceback" not in result.output


def test_a_sip_run_s_tables_time_its_sessions_from_the_invite() -> None:
    call = SessionRecord(index=0, due=0.0, transport="sip", start_answer=0.4, ready=0.4, connected=0.4,
                         first_audio=0.5, turns=[0.6])
    text = tables(summarise([call]), OwnCost().figures(1), "sip")
    assert "INVITE sent → 200 OK" in text and "INVITE sent → first bot audio heard" in text
    assert "POST /start" not in text
