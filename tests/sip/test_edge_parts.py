"""The edge's parts that need no SIP stack: its configuration's errors, who may call, what the bot is
told, the frames Pipecat must recognise as a carrier's, the bounded playout and the refusals' codes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pipecat.runner.utils import _detect_transport_type_from_message

from sipedge import stream_frames
from sipedge.admission import Admitted, Refused, admit, dialled_number, source_host
from sipedge.call_data import MAX_EVAL_TOKEN, MAX_HEADERS, body_bytes, call_body, eval_token
from sipedge.config import ConfigError, load
from sipedge.edge_status import workers_status
from sipedge.playout import Playout
from sipedge.refusal_log import RefusalLog
from sipedge.refusals import DEFAULT_RETRY_SECONDS, from_http
from sipedge.source_limits import SourceLimits

TRUNK = """
[[trunk]]
name = "office"
sources = ["10.0.0.0/24", "127.0.0.1"]
numbers = { "+14155550199" = "SALES_KEY", "200" = "" }
"""


def config(tmp_path: Path, text: str, **env: str) -> dict[str, str]:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return {"SIP_EDGE_CONFIG": str(path), **env}


def test_a_number_runs_as_the_key_its_variable_holds_and_the_file_holds_no_secret(tmp_path: Path) -> None:
    edge = load(config(tmp_path, TRUNK, SALES_KEY="k-123"))
    (trunk,) = edge.trunks
    assert trunk.api_keys == {"+14155550199": "k-123", "200": None}
    assert "k-123" not in repr(edge)


@pytest.mark.parametrize(("text", "env", "said"), [
    (TRUNK, {}, "SALES_KEY is unset"),
    (TRUNK.replace('"127.0.0.1"', '"not-an-address"'), {"SALES_KEY": "k"}, "trunk.0.sources"),
    (TRUNK + "sip_port = 5060\n", {"SALES_KEY": "k"}, "trunk.0.sip_port: Extra inputs"),  # a key after a table is its
    ("[[trunk]\n", {}, "not TOML"),
    ("sip_port = 0\n" + TRUNK, {"SALES_KEY": "k"}, "sip_port"),
    (TRUNK.replace("name =", "registrar = \"sip:pbx.example.com\"\nname ="), {"SALES_KEY": "k"},
     "digest_username and digest_password_env"),
    ("", {}, "trunk: Field required"),
])
def test_a_configuration_that_cannot_work_says_what_to_change(
    tmp_path: Path, text: str, env: dict[str, str], said: str,
) -> None:
    with pytest.raises(ConfigError, match=said):
        load(config(tmp_path, text, **env))


NODE_ADDRESSES = 'sip_address_env = "NODE_IP"\ncontrol_address_env = "NODE_IP"\npublic_address = "203.0.113.7"\n'


def test_a_hosts_address_known_only_at_start_is_read_from_the_variable_the_file_names(tmp_path: Path) -> None:
    edge = load(config(tmp_path, NODE_ADDRESSES + TRUNK, SALES_KEY="k", NODE_IP="10.1.2.3"))
    assert (edge.sip_address, edge.control_address, edge.advertised) == ("10.1.2.3", "10.1.2.3", "203.0.113.7")


@pytest.mark.parametrize(("text", "env", "said"), [
    (NODE_ADDRESSES + TRUNK, {}, "sip_address_env: the environment variable NODE_IP is unset"),
    (NODE_ADDRESSES + TRUNK, {"NODE_IP": "node-1"}, "NODE_IP holds 'node-1', not an IP address"),
    ('sip_address = "10.0.0.1"\n' + NODE_ADDRESSES + TRUNK, {"NODE_IP": "10.1.2.3"},
     "give sip_address or sip_address_env, not both"),
    ('sip_address = "edge.example.com"\n' + TRUNK, {},
     "sip_address 'edge.example.com' is not an IP address: give the address to bind"),
])
def test_an_address_variable_unset_not_an_address_or_beside_the_address_or_a_host_name_is_refused(
    tmp_path: Path, text: str, env: dict[str, str], said: str,
) -> None:
    with pytest.raises(ConfigError, match=said):
        load(config(tmp_path, text, SALES_KEY="k", **env))


PINNED = TRUNK.replace('"200" = ""', '"200" = { key = "SALES_KEY", release = "canary-v2" }, "201" = { key = "" }')


def test_a_number_in_table_form_runs_as_its_key_and_release_beside_todays_form(tmp_path: Path) -> None:
    (trunk,) = load(config(tmp_path, PINNED, SALES_KEY="k")).trunks
    assert trunk.api_keys == {"+14155550199": "k", "200": "k", "201": None}
    assert trunk.releases == {"200": "canary-v2"}  # the others: the dispatcher's own choice
    pinned, plain = (admit((trunk,), "10.0.0.9:5060", f"<sip:{n}@edge>") for n in ("200", "201"))
    assert isinstance(pinned, Admitted) and isinstance(plain, Admitted)
    assert (pinned.api_key, pinned.release, plain.release) == ("k", "canary-v2", None)


@pytest.mark.parametrize(("entry", "said"), [
    ('{ key = "SALES_KEY", relase = "v2" }', r"numbers\.200\.table\.relase: Extra inputs are not permitted"),
    ('{ release = "v2" }', r"numbers\.200\.table\.key: Field required"),
    ('{ key = "SALES_KEY", release = "V 2" }', r"numbers\.200\.table\.release: String should match"),
    ("5", r"numbers\.200\.table: Input should be a valid dictionary"),
])
def test_a_numbers_table_with_a_key_it_does_not_take_or_a_bad_release_is_refused_by_name(
    tmp_path: Path, entry: str, said: str,
) -> None:
    with pytest.raises(ConfigError, match=said):
        load(config(tmp_path, TRUNK.replace('"200" = ""', f'"200" = {entry}'), SALES_KEY="k"))


def test_without_a_configuration_the_edge_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="SIP_EDGE_CONFIG is unset"):
        load({})


def test_a_source_no_trunk_allows_is_403_and_a_number_none_serves_404(tmp_path: Path) -> None:
    trunks = load(config(tmp_path, TRUNK, SALES_KEY="k")).trunks
    assert admit(trunks, "192.0.2.7:5060", "<sip:+14155550199@edge>") == Refused(403, "no trunk allows this source")
    assert admit(trunks, "10.0.0.9:5060", "<sip:+15550000000@edge>") == Refused(404, "no trunk serves this number")
    admitted = admit(trunks, "10.0.0.9:5060", '"Sales" <sip:+14155550199@edge;user=phone>')
    assert isinstance(admitted, Admitted) and (admitted.number, admitted.api_key) == ("+14155550199", "k")


def test_addresses_and_numbers_are_read_as_pjsip_and_trunks_write_them() -> None:
    assert [source_host(a) for a in ("127.0.0.1:5070", "[::1]:5070", "::1")] == ["127.0.0.1", "::1", "::1"]
    assert [dialled_number(u) for u in ("sip:200@pbx", "<sips:+1415@x:5061>", "tel:+1415")] == ["200", "+1415", ""]


def test_the_bot_is_told_from_to_call_id_and_the_x_headers_only() -> None:
    invite = ("INVITE sip:200@edge SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9\r\nX-Ticket: T-1\r\nx-customer:  42 \r\n"
              + "".join(f"X-Extra-{n}: {n}\r\n" for n in range(MAX_HEADERS)) + "Content-Length: 0\r\n\r\nv=0\r\n")
    body = call_body("<sip:+1415@carrier>", "<sip:200@edge>", "abc@carrier", invite)
    assert (body["from"], body["to"], body["call_id"]) == ("<sip:+1415@carrier>", "<sip:200@edge>", "abc@carrier")
    assert list(body["headers"])[:2] == ["X-Ticket", "x-customer"] and body["headers"]["x-customer"] == "42"
    assert len(body["headers"]) == MAX_HEADERS and "Via" not in body["headers"]


def test_an_evals_token_is_the_edges_to_forward_and_never_reaches_the_bot() -> None:
    invite = "INVITE sip:200@edge SIP/2.0\r\nX-Ticket: T-1\r\nx-voicefleet-eval:  abc.def \r\nContent-Length: 0\r\n\r\n"
    body = call_body("<sip:+1415@carrier>", "<sip:200@edge>", "abc@carrier", invite)
    assert body["headers"] == {"X-Ticket": "T-1"}
    assert eval_token(invite) == "abc.def"
    assert eval_token(invite.replace("x-voicefleet-eval", "X-Other")) is None
    assert len(eval_token(invite.replace("abc.def", "a" * 5000)) or "") == MAX_EVAL_TOKEN  # cut: fails as forged


def test_a_refused_eval_token_is_603_so_the_trunk_tries_no_other_route() -> None:
    refusal = from_http(403, None, "eval_token_refused")
    assert (refusal.status, refusal.retry_after) == (603, None) and "X-Voicefleet-Eval" in refusal.why
    assert from_http(403, None, "sip_edge_only").status == 503  # any other refusal: as before


def test_pipecat_takes_the_edges_stream_for_a_carriers_and_reads_its_frames() -> None:
    import json

    connected, start = stream_frames.handshake("s1", "abc@carrier", "<sip:+1415@c>", "<sip:200@edge>")
    assert json.loads(connected) == {"event": "connected"}
    assert _detect_transport_type_from_message(json.loads(start)) == "exotel"
    assert stream_frames.read_bot_frame(stream_frames.media("s1", b"\x01\x02")) == stream_frames.BotFrame(b"\x01\x02")
    assert stream_frames.read_bot_frame('{"event": "clear", "stream_sid": "s1"}') == stream_frames.BotFrame(clear=True)
    assert json.loads(stream_frames.dtmf("s1", "#"))["dtmf"] == {"digit": "#"}  # what Exotel's serializer reads
    for junk in ("not json", "[]", '{"event": "media", "media": 3}', '{"event": "media", "media": {"payload": "*"}}'):
        assert stream_frames.read_bot_frame(junk) is None


def test_the_bots_audio_waits_bounded_and_silence_fills_what_it_has_not_sent() -> None:
    playout = Playout(max_seconds=0.001)  # 8 samples
    playout.add(bytes(range(20)))
    assert playout.dropped_bytes == 4
    assert playout.take(6) == bytes(range(4, 10))
    assert playout.take(12) == bytes(range(10, 20)) + bytes(2)
    playout.add(b"\x07\x07")
    playout.clear()
    assert playout.take(2) == bytes(2)


def test_a_keys_own_limit_is_busy_and_anything_else_unavailable_both_with_retry_after() -> None:
    assert (from_http(429, "17", "rate_limited").status, from_http(429, "17", "").retry_after) == (486, 17)
    assert from_http(503, None, "draining").status == 503
    assert from_http(401, "soon", "unauthorized").retry_after == DEFAULT_RETRY_SECONDS


def test_a_release_the_dispatcher_lacks_fails_this_call_over_without_marking_the_edge_down() -> None:
    refusal = from_http(422, None, "unknown_release", "canary-v2")
    assert (refusal.status, refusal.retry_after) == (500, None) and "'canary-v2'" in refusal.why
    assert from_http(422, None, "invalid_body").status == 503  # any other refusal: as before


def test_the_example_configuration_the_docs_run_loads() -> None:
    example = Path(__file__).parents[2] / "sipedge" / "trunks.example.toml"
    (trunk,) = load({"SIP_EDGE_CONFIG": str(example)}).trunks
    assert trunk.api_keys == {"+14155550199": None}


def test_the_call_data_fits_the_dispatchers_body_bound_whatever_the_caller_sends() -> None:
    long_value = "é" * 100  # six bytes each once JSON escapes it, as the dispatcher measures
    invite = "INVITE sip:200@edge SIP/2.0\r\n" + "".join(f"X-Field-{n}: {long_value}\r\n" for n in range(MAX_HEADERS))
    body = call_body("<sip:" + "1" * 5000 + "@carrier>", "<sip:200@edge>", "c" * 5000, invite + "\r\n")
    assert body_bytes(body) <= 2048  # dispatcher/phone/tokens.py's MAX_TOKEN_BODY_BYTES
    assert body["to"] == "<sip:200@edge>" and body["headers"]  # what fits is kept


def test_a_source_over_its_invite_rate_cools_down_and_one_source_cannot_take_every_call() -> None:
    now = [0.0]
    limits = SourceLimits(rate=10, period=1.0, cool_down=30.0, calls=2, clock=lambda: now[0])
    assert [limits.check("192.0.2.9") for _ in range(10)] == [None] * 10
    assert limits.check("192.0.2.9") == "source over 10 INVITEs in 1 s"
    now[0] = 29.0
    assert limits.check("192.0.2.9") == "source cooling down after too many INVITEs"
    assert limits.check("192.0.2.10") is None  # another source is not held back
    now[0] = 31.0
    assert limits.check("192.0.2.9") is None
    limits.started("192.0.2.9")
    limits.started("192.0.2.9")
    assert limits.check("192.0.2.9") == "source already has 2 calls"
    limits.ended("192.0.2.9")
    assert limits.check("192.0.2.9") is None


def test_thousands_of_refusals_cost_a_line_each_source_and_one_line_a_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusals = RefusalLog()
    with caplog.at_level(logging.WARNING, logger="sipedge"):
        for n in range(3000):
            refusals.refused(f"192.0.2.{n % 3}", "<sip:+1415\x1b[2J@edge>", 403, "no trunk allows this source")
        refusals.end_period()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines
    assert "\x1b" not in "".join(lines)  # the caller's text is escaped
    assert lines[-1].startswith("sipedge: 3000 requests refused in the last") and "{403: 3000}" in lines[-1]
    assert refusals.total == 3000


def test_a_strangers_ignored_notify_is_counted_and_logged_as_a_refusal(caplog: pytest.LogCaptureFixture) -> None:
    refusals = RefusalLog()
    with caplog.at_level(logging.WARNING, logger="sipedge"):
        refusals.refused("192.0.2.7", "<sip:+14155550199@edge>", 403, "no trunk allows this source")
        for _ in range(3):
            refusals.ignored("192.0.2.7", "NOTIFY", "not from the call's trunk 'twilio'")
        refusals.end_period()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[1] == ("sipedge: NOTIFY from 192.0.2.7 ignored: not from the call's trunk 'twilio' (more from it "
                        "this period are only counted)"), lines
    assert len(lines) == 3 and "{403: 1, 'NOTIFY ignored': 3}" in lines[-1], lines
    assert refusals.total == 4


def test_the_last_minutes_refusals_are_those_of_the_last_60_seconds() -> None:
    now = [1000.0]
    refusals = RefusalLog(clock=lambda: now[0])
    for _ in range(3):
        refusals.refused("192.0.2.7", "<sip:+14155550199@edge>", 403, "no trunk allows this source")
    now[0] = 1030.5
    refusals.ignored("192.0.2.7", "NOTIFY", "not from the call's trunk 'twilio'")
    refusals.end_period()  # the log's period ends: the last minute's count does not
    assert refusals.last_minute() == 4
    now[0] = 1060.0  # the first three were 60 s ago
    assert refusals.last_minute() == 1
    now[0] = 1000.0 + 3600  # an hour on, the same second's slot again: counted afresh
    refusals.refused("192.0.2.7", "<sip:+14155550199@edge>", 403, "no trunk allows this source")
    assert refusals.last_minute() == 1


def test_an_edge_with_workers_counts_each_answering_workers_calls_and_every_workers_slots(tmp_path: Path) -> None:
    trunks = load(config(tmp_path, TRUNK, SALES_KEY="k")).trunks
    worker = {"ready": True, "calls": {"in_progress": 2, "free": 1, "total": 3}, "refused_last_minute": 4}
    body = workers_status([worker, None, {**worker, "ready": False}], 3, trunks, 1000.0)
    assert body["calls"] == {"in_progress": 4, "free": 2, "total": 9}  # the silent worker's slots are not free
    assert body["workers"] == {"total": 3, "answering": 2} and body["ready"] is True
    assert body["refused_last_minute"] == 8
    assert body["trunks"] == [{"name": "office", "registration": "not_registering"}]
    assert workers_status([None, None], 3, trunks, 1000.0)["ready"] is False
