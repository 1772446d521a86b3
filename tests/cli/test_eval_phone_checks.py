"""A suite's phone scenarios are checked against the deployment before any call is placed: what the
caller cannot check on a phone line is refused, naming the way to turn it on."""

from __future__ import annotations

from pathlib import Path

from voicefleet.evals.phone_checks import phone_refusal
from voicefleet.evals.scenario import Scenario, load_scenario

WORDS = 'transport = "twilio"\n[[turns]]\ndtmf = "4#"\nexpect = { contains = ["what time"] }\n'
TIMED = 'transport = "twilio"\n[[turns]]\ndtmf = "4#"\nexpect = { within_ms = 3000 }\n'
HAS_TWILIO = {"status": "ok", "bots_lack": {"twilio": []}}


def scenario(tmp_path: Path, text: str) -> Scenario:
    path = tmp_path / "phone.toml"
    path.write_text(text)
    return load_scenario(path)


def test_words_on_a_phone_call_need_a_dispatcher_that_keeps_transcripts(tmp_path: Path) -> None:
    words = scenario(tmp_path, WORDS)
    lines, refusal = phone_refusal([words], HAS_TWILIO, {"sessions": 0})  # RECORDING* off: no `recordings`
    assert refusal is not None and "checks the bot's words on a twilio call" in refusal
    assert "RECORDING_TRANSCRIPT=on" in refusal and "within_ms, silent and bot_ends" in refusal
    assert phone_refusal([words], HAS_TWILIO, {"recordings": {"transcript": "on"}})[1] is None
    assert phone_refusal([words], HAS_TWILIO, None)[1] is None  # cannot tell: each call says it
    assert phone_refusal([scenario(tmp_path, TIMED)], HAS_TWILIO, {})[1] is None  # audio alone: no words


def test_a_phone_call_needs_the_carriers_credentials(tmp_path: Path) -> None:
    timed = scenario(tmp_path, TIMED)
    lacking = {"bots_lack": {"twilio": ["TWILIO_AUTH_TOKEN"]}}
    refusal = phone_refusal([timed], lacking, {})[1]
    assert refusal is not None and "TWILIO_AUTH_TOKEN" in refusal and "LOCAL_BOT_ENV" in refusal



def test_each_carrier_needs_its_own_credentials_and_exotel_none(tmp_path: Path) -> None:
    """Pipecat's Telnyx and Plivo serializers hang up through their carrier's API as Twilio's does, so
    their bots refuse to start without its credentials; Exotel's asks for none."""
    lacking = {"bots_lack": {"twilio": [], "telnyx": ["TELNYX_API_KEY"], "plivo": ["PLIVO_AUTH_TOKEN"]}}
    for carrier, missing in (("telnyx", "TELNYX_API_KEY"), ("plivo", "PLIVO_AUTH_TOKEN")):
        refusal = phone_refusal([scenario(tmp_path, TIMED.replace('"twilio"', f'"{carrier}"'))], lacking, {})[1]
        assert refusal is not None and missing in refusal and "LOCAL_BOT_ENV" in refusal, carrier
    assert phone_refusal([scenario(tmp_path, TIMED.replace('"twilio"', '"exotel"'))], lacking, {}) == ([], None)
