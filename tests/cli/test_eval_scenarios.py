"""Scenario files: what a team writes is typed and checked before any call is placed, and each
answer is judged as the expectation says."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.examples import BOOKING
from voicefleet.evals.checks import Answer, failures
from voicefleet.evals.scenario import Expect, ScenarioError, load_scenario, load_suite, schema


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_the_booking_lines_own_suite_loads() -> None:
    scenarios = load_suite(BOOKING / "scenarios")
    assert {s.name for s in scenarios} >= {"book a table", "opening hours"}
    assert all(s.source.endswith(".toml") for s in scenarios)


def test_a_typo_names_the_file_the_field_and_the_nearest_field(tmp_path: Path) -> None:
    path = write(tmp_path, "a.toml", '[[turns]]\nsay = "hi"\nexpect = { contians = ["hello"] }\n')
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert str(raised.value) == f"{path}: turns.0.expect.contians: unknown field; did you mean 'contains'?"


def test_a_turn_takes_text_or_a_wav_never_both_nor_neither(tmp_path: Path) -> None:
    both = write(tmp_path, "both.toml", '[[turns]]\nsay = "hi"\nwav = "hi.wav"\n')
    neither = write(tmp_path, "neither.toml", "[[turns]]\nlisten_ms = 100\n")
    for path in (both, neither):
        with pytest.raises(ScenarioError, match="exactly one of say"):
            load_scenario(path)


def test_a_wav_must_be_beside_the_scenario(tmp_path: Path) -> None:
    path = write(tmp_path, "a.toml", '[[turns]]\nwav = "missing.wav"\n')
    with pytest.raises(ScenarioError, match="'missing.wav' is not a file beside the scenario"):
        load_scenario(path)


def test_a_suite_refuses_two_scenarios_of_one_name_and_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no scenario files"):
        load_suite(tmp_path)
    write(tmp_path, "a.toml", 'name = "same"\n[[turns]]\nsay = "a"\n')
    write(tmp_path, "b.toml", 'name = "same"\n[[turns]]\nsay = "b"\n')
    with pytest.raises(ScenarioError, match="two scenarios are named 'same'"):
        load_suite(tmp_path)


def test_a_transport_the_caller_cannot_hear_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "a.toml", 'transport = "vonage"\n[[turns]]\nsay = "hi"\n')
    with pytest.raises(ScenarioError,
                       match="transport: Input should be 'webrtc', 'twilio', 'telnyx', 'plivo', 'exotel', 'sip' or "
                             "'whatsapp'"):
        load_scenario(path)


def test_the_schema_describes_the_fields_an_editor_completes() -> None:
    described = schema()
    assert described["additionalProperties"] is False
    assert {"contains", "within_ms", "silent"} <= set(described["$defs"]["Expect"]["properties"])  # type: ignore[index]


@pytest.mark.parametrize(
    ("expect", "answer", "problems"),
    [
        (Expect(contains=["two"]), Answer("A table for twenty.", 300), ["expected 'two', heard 'A table for twenty.'"]),
        (Expect(contains=["table for two"]), Answer("A TABLE, for two!", 300), []),
        (Expect(not_contains=["sorry"]), Answer("Sorry, I did not catch that.", 300),
         ["expected no 'sorry', heard 'Sorry, I did not catch that.'"]),
        (Expect(matches=r"at (seven|eight)"), Answer("Booked at nine.", 300),
         ["expected to match /at (seven|eight)/, heard 'Booked at nine.'"]),
        (Expect(within_ms=500), Answer("Hello.", 1200.4), ["expected audio within 500 ms, it began after 1200 ms"]),
        (Expect(contains=["hello"]), Answer("", None), ["expected an answer, heard nothing"]),
        (Expect(silent=True), Answer("Hello.", 100), ["expected silence, heard 'Hello.'"]),
        (Expect(silent=True), Answer("", None), []),
    ],
)
def test_an_answer_is_judged_word_by_word(expect: Expect, answer: Answer, problems: list[str]) -> None:
    assert failures(expect, answer) == problems


def test_a_phone_scenario_presses_keys_and_a_web_one_is_refused_them(tmp_path: Path) -> None:
    phone = write(tmp_path, "phone.toml", 'transport = "twilio"\n[[turns]]\ndtmf = "4#"\n'
                  'expect = { within_ms = 3000 }\n[[turns]]\nsay = "At eight"\nexpect = { contains = ["eight"] }\n')
    scenario = load_scenario(phone)
    assert scenario.on_phone and [turn.said for turn in scenario.turns] == ["keys 4#", "At eight"]
    assert scenario.reads_words()  # "contains": the bot's words, read from the session's transcript

    web = write(tmp_path, "web.toml", '[[turns]]\ndtmf = "1"\n')
    with pytest.raises(ScenarioError) as refused:
        load_scenario(web)
    assert str(refused.value) == (f'{web}: (the file): Value error, dtmf is pressed on a phone call only: '
                                  'set transport = "twilio", "telnyx", "plivo", "exotel" or "sip"')
    typo = write(tmp_path, "typo.toml", 'transport = "twilio"\n[[turns]]\ndtfm = "1"\n')
    with pytest.raises(ScenarioError, match="turns.0.dtfm: unknown field; did you mean 'dtmf'"):
        load_scenario(typo)
    for keys in ("12a", "", "1" * 33):
        bad = write(tmp_path, "bad.toml", f'transport = "twilio"\n[[turns]]\ndtmf = "{keys}"\n')
        with pytest.raises(ScenarioError, match="turns.0.dtmf"):
            load_scenario(bad)
    both = write(tmp_path, "both.toml", 'transport = "twilio"\n[[turns]]\ndtmf = "1"\nsay = "one"\n')
    with pytest.raises(ScenarioError, match="exactly one of say"):
        load_scenario(both)


@pytest.mark.parametrize("carrier", ["telnyx", "plivo", "exotel"])
def test_every_carrier_the_dispatcher_takes_places_a_scenario_and_carries_its_keys(tmp_path: Path,
                                                                                   carrier: str) -> None:
    """Each carrier's bidirectional stream sends `dtmf` events (Telnyx's media streaming, Plivo's audio
    streams, Exotel's Voicebot applet, as Twilio's Media Streams): no carrier refuses a keypad turn."""
    path = write(tmp_path, f"{carrier}.toml", f'transport = "{carrier}"\n[[turns]]\ndtmf = "4#"\n'
                 'expect = { within_ms = 3000 }\n')
    scenario = load_scenario(path)
    assert scenario.on_phone and scenario.transport == carrier and scenario.turns[0].said == "keys 4#"


def test_a_phone_scenario_that_checks_only_audio_reads_no_words(tmp_path: Path) -> None:
    path = write(tmp_path, "timed.toml", 'transport = "twilio"\n[call]\nbot_ends = true\n[[turns]]\nsay = "hi"\n'
                 'expect = { within_ms = 2000 }\n[[turns]]\nsay = "hm"\nexpect = { silent = true }\n')
    assert not load_scenario(path).reads_words()


def test_audio_heard_is_no_silence_even_without_words() -> None:
    assert failures(Expect(silent=True), Answer("", 640.0)) == ["expected silence, the bot spoke after 640 ms"]
    assert failures(Expect(silent=True), Answer("", None)) == []


@pytest.mark.parametrize("field", ["contains", "not_contains"])
def test_a_phrase_with_no_word_is_refused(tmp_path: Path, field: str) -> None:
    """`contains = [""]` could never pass and `not_contains = [""]` never fail: refused, not kept."""
    for phrase in ('""', '"  "', '"?!"'):
        path = write(tmp_path, "a.toml", f'[[turns]]\nsay = "hi"\nexpect = {{ {field} = ["booked", {phrase}] }}\n')
        with pytest.raises(ScenarioError) as raised:
            load_scenario(path)
        assert str(raised.value) == (f"{path}: turns.0.expect.{field}: Value error, a phrase holds no word: write "
                                     "the words to look for, or leave the list out")


def test_an_expectation_written_as_a_string_names_the_table_to_write(tmp_path: Path) -> None:
    path = write(tmp_path, "a.toml", '[call]\ngreeting = "booking line"\n[[turns]]\nsay = "hi"\nexpect = "hello"\n')
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert str(raised.value).splitlines() == [
        f"{path}: turns.0.expect: an expectation is a table of checks, not 'hello': write expect = "
        '{ contains = ["hello"] } (or matches, not_contains, within_ms, silent)',
        f"{path}: call.greeting: an expectation is a table of checks, not 'booking line': write greeting = "
        '{ contains = ["booking line"] } (or matches, not_contains, within_ms, silent)']


def test_a_sip_scenario_names_its_edge_by_a_sip_uri_and_only_it_does(tmp_path: Path) -> None:
    sip = write(tmp_path, "sip.toml", 'transport = "sip"\nsip_uri = "sip:+14155550199@127.0.0.1"\n'
                '[[turns]]\ndtmf = "1"\n')
    assert load_scenario(sip).sip_uri == "sip:+14155550199@127.0.0.1:5060"  # SIP's default port, said
    bad = write(tmp_path, "bad.toml", 'transport = "sip"\nsip_uri = "tel:+14155550199"\n[[turns]]\nsay = "hi"\n')
    with pytest.raises(ScenarioError, match="sip_uri: Value error, 'tel:.*' is not a SIP URI of the edge: write sip:"):
        load_scenario(bad)
    web = write(tmp_path, "web.toml", 'sip_uri = "sip:+14155550199@127.0.0.1"\n[[turns]]\nsay = "hi"\n')
    with pytest.raises(ScenarioError, match='sip_uri is where a SIP call goes: set transport = "sip"'):
        load_scenario(web)



def test_a_whatsapp_scenario_names_its_number_and_is_heard_as_a_phone_call_is(tmp_path: Path) -> None:
    call = write(tmp_path, "wa.toml", 'transport = "whatsapp"\nwhatsapp_number = "106540352242922"\n'
                 '[[turns]]\nsay = "hi"\n')
    loaded = load_scenario(call)
    assert loaded.whatsapp_number == "106540352242922" and loaded.on_phone  # its words: the transcript's


@pytest.mark.parametrize(("text", "refusal"), [
    ('whatsapp_number = "106540352242922"\n[[turns]]\nsay = "hi"\n',
     'whatsapp_number is the number a WhatsApp call goes to: set transport = "whatsapp"'),
    ('transport = "whatsapp"\n[[turns]]\ndtmf = "1#"\n', "dtmf is pressed on a phone call only"),
    ('transport = "whatsapp"\nwhatsapp_number = "+1 555"\n[[turns]]\nsay = "hi"\n', "whatsapp_number: String should"),
])
def test_a_whatsapp_number_off_whatsapp_keys_on_it_or_a_number_not_an_id_are_refused(
        tmp_path: Path, text: str, refusal: str) -> None:
    with pytest.raises(ScenarioError, match=refusal):
        load_scenario(write(tmp_path, "wa.toml", text))
