"""The edge's outbound parts without a call: a trunk's outbound settings as the file gives them, and
the far end's final answer read as an outcome."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sipedge import control
from sipedge.config import ConfigError, load
from sipedge.edge import Edge
from sipedge.outbound_call import CallOrder, outcome_of
from sipedge.outbound_sip import target_uri
from tests.sip.test_call_slots import ringing, wound_down
from voicefleet_settings.call_policy import refusal

OUT = """
control_port = 5080
control_secret_env = "EDGE_SECRET"

[[trunk]]
name = "twilio"
termination_uri = "sip:example.pstn.twilio.com"
digest_username = "carol"
digest_password_env = "TWILIO_SIP_PASSWORD"
cps = 1
ring_seconds = 25
"""
SECRET = "s" * 40


def config(tmp_path: Path, text: str, **env: str) -> dict[str, str]:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return {"SIP_EDGE_CONFIG": str(path), **env}


def test_an_outbound_trunk_reads_its_password_and_the_control_secret_from_the_environment(tmp_path: Path) -> None:
    edge = load(config(tmp_path, OUT, EDGE_SECRET=SECRET, TWILIO_SIP_PASSWORD="pw-1"))
    (trunk,) = edge.trunks
    assert (trunk.termination_uri, trunk.cps, trunk.ring_seconds) == ("sip:example.pstn.twilio.com", 1, 25)
    assert (trunk.digest_username, trunk.digest_password, edge.control_secret) == ("carol", "pw-1", SECRET)
    assert "pw-1" not in repr(edge) and SECRET not in repr(edge)
    assert not trunk.api_keys and not trunk.sources  # it brings no calls in


def test_the_edge_presents_its_own_credential_to_the_dispatcher_and_checks_the_control_key(tmp_path: Path) -> None:
    """Two values, each derived for this edge (docs/sip.md#edge-credentials); a file of an earlier release names
    the control key alone, which the edge then presents (and a dispatcher refuses, naming edge_credential_env)."""
    text = OUT.replace('control_secret_env = "EDGE_SECRET"\n',
                       'control_secret_env = "EDGE_SECRET"\nedge_credential_env = "EDGE_CREDENTIAL"\n')
    credential = "vfe1." + "c" * 60
    edge = load(config(tmp_path, text, EDGE_SECRET=SECRET, EDGE_CREDENTIAL=credential, TWILIO_SIP_PASSWORD="pw"))
    assert (edge.control_secret, edge.dispatcher_credential) == (SECRET, credential)
    assert credential not in repr(edge)
    older = load(config(tmp_path, OUT, EDGE_SECRET=SECRET, TWILIO_SIP_PASSWORD="pw"))
    assert older.dispatcher_credential == SECRET
    with pytest.raises(ConfigError, match="not one derived for an edge"):
        load(config(tmp_path, text, EDGE_SECRET=SECRET, EDGE_CREDENTIAL=SECRET, TWILIO_SIP_PASSWORD="pw"))


@pytest.mark.parametrize(("text", "env", "said"), [
    (OUT, {"TWILIO_SIP_PASSWORD": "pw"}, "EDGE_SECRET is unset"),
    (OUT, {"TWILIO_SIP_PASSWORD": "pw", "EDGE_SECRET": "short"}, "at least 32 characters"),
    (OUT.replace('control_secret_env = "EDGE_SECRET"\n', ""), {"TWILIO_SIP_PASSWORD": "pw"},
     "control_port needs control_secret_env"),
    (OUT, {"EDGE_SECRET": SECRET}, "TWILIO_SIP_PASSWORD is unset"),
    (OUT.replace('digest_username = "carol"\n', ""), {"EDGE_SECRET": SECRET, "TWILIO_SIP_PASSWORD": "pw"},
     "needs both digest_username and digest_password_env"),
    (OUT.replace("cps = 1", "cps = 0"), {"EDGE_SECRET": SECRET, "TWILIO_SIP_PASSWORD": "pw"}, "trunk.0.cps"),
    (OUT.replace('"sip:example.pstn.twilio.com"', '"example.pstn.twilio.com"'),
     {"EDGE_SECRET": SECRET, "TWILIO_SIP_PASSWORD": "pw"}, "trunk.0.termination_uri"),
    (OUT.replace('termination_uri = "sip:example.pstn.twilio.com"\n', ""),
     {"EDGE_SECRET": SECRET, "TWILIO_SIP_PASSWORD": "pw"}, "give it numbers .* or a termination_uri"),
    (OUT + OUT[OUT.index("[[trunk]]"):], {"EDGE_SECRET": SECRET, "TWILIO_SIP_PASSWORD": "pw"},
     "trunk names must differ"),
])
def test_an_outbound_configuration_that_cannot_work_says_what_to_change(
    tmp_path: Path, text: str, env: dict[str, str], said: str,
) -> None:
    with pytest.raises(ConfigError, match=said):
        load(config(tmp_path, text, **env))


@pytest.mark.parametrize(("status", "outcome"), [
    (200, "answered"), (486, "busy"), (600, "busy"), (408, "no_answer"), (480, "no_answer"), (487, "no_answer"),
    (404, "rejected"), (403, "rejected"), (503, "rejected"), (603, "rejected")])
def test_the_far_end_s_final_answer_is_the_call_s_outcome(status: int, outcome: str) -> None:
    assert outcome_of(status) == outcome


def test_the_called_number_goes_to_the_termination_uri_s_host(tmp_path: Path) -> None:
    (trunk,) = load(config(tmp_path, OUT, EDGE_SECRET=SECRET, TWILIO_SIP_PASSWORD="pw")).trunks
    assert target_uri(trunk, "+14155550100") == "sip:+14155550100@example.pstn.twilio.com"


def test_a_trunk_calls_for_the_keys_it_names_to_the_numbers_it_allows_from_its_own_numbers(tmp_path: Path) -> None:
    text = OUT + 'callers = ["team-a"]\ndestinations = ["+1*", "+44*", "+1900555*"]\nsources = ["192.0.2.0/24"]\n' \
        'numbers = { "+14155550199" = "" }\n'
    trunk = load(config(tmp_path, text, EDGE_SECRET=SECRET, TWILIO_SIP_PASSWORD="pw")).trunks[0]
    assert trunk.caller_ids == ("+14155550199",)  # its own numbers unless set
    assert refusal(trunk, "team-a", "+14155550100", "+14155550199") is None
    assert refusal(trunk, "team-a", "+442071234567", "+14155550199") is None
    assert refusal(trunk, "team-a", "+19005550100", "+14155550199") is None  # named at least as closely
    assert "`callers`" in str(refusal(trunk, "team-b", "+14155550100", "+14155550199"))
    for far in ("+19765550100", "+19001230000", "+911", "+4915155550100"):
        assert "`destinations`" in str(refusal(trunk, "team-a", far, "+14155550199")), far
    assert "`caller_ids`" in str(refusal(trunk, "team-a", "+14155550100", "+14155550123"))
    nobody = load(config(tmp_path, OUT, EDGE_SECRET=SECRET, TWILIO_SIP_PASSWORD="pw")).trunks[0]
    assert "(now: none)" in str(refusal(nobody, "team-a", "+14155550100", "+14155550199"))  # no callers: no calls
    anywhere = dataclasses.replace(trunk, destinations=("+*",), caller_ids=("+14155550199",))
    for risky in ("+911", "+112", "+8821234567", "+19005550100"):
        assert refusal(anywhere, "team-a", risky, "+14155550199") is not None, risky
    assert refusal(dataclasses.replace(trunk, destinations=("+911",)), "team-a", "+911", "+14155550199") is None


def test_a_destination_that_is_no_e164_pattern_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"destinations.*'1\*' is not an E.164 pattern"):
        load(config(tmp_path, OUT + 'destinations = ["1*"]\n', EDGE_SECRET=SECRET, TWILIO_SIP_PASSWORD="pw"))


async def test_a_retried_hand_over_is_taken_again_though_the_edge_is_full_now(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dispatcher's retry of a hand-over whose 202 was lost, arriving once the call filled the edge:
    202 (the call rings), not 503 edge_full (which would end its session `not_placed`)."""
    ringing: list[str] = []

    async def rings(order: CallOrder, *args: object) -> None:  # the SIP call itself: not tested here
        ringing.append(order.session_id)
        await asyncio.sleep(30)

    monkeypatch.setattr(control, "run_outbound", rings)
    text = OUT + 'callers = ["team-a"]\ncaller_ids = ["+14155550199"]\n'
    edge = Edge(load(config(tmp_path, text, EDGE_SECRET=SECRET, TWILIO_SIP_PASSWORD="pw")),
                asyncio.get_running_loop())
    edge.capacity = 1
    edge.stack.started.set()  # PJSIP itself is not started: no call goes out
    api = control.Control(edge, SECRET)
    order = {"session_id": "s1", "stream_path": "/ws/exotel/t", "to": "+14155550100", "from": "+14155550199",
             "trunk": "twilio", "caller": "team-a"}
    async with TestClient(TestServer(api.app())) as client:
        signed = {"Authorization": f"Bearer {SECRET}"}
        statuses = [(await client.post("/calls", json=order, headers=signed)).status for _ in range(2)]
        other = await client.post("/calls", json={**order, "session_id": "s2"}, headers=signed)
        assert (other.status, (await other.json())["error"]["code"]) == (503, "edge_full")
    await api.close()
    await edge.link.close()
    assert statuses == [202, 202]
    assert ringing == ["s1"]  # placed once


def ringing_edge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Edge:
    """An edge with one trunk that places calls (key team-a) and takes them from 127.0.0.1, its outbound calls
    ringing 30 s and no SIP call going out (PJSIP itself is not started); its refusals answered at once."""
    async def rings(order: CallOrder, *args: object) -> None:  # the SIP call itself: not tested here
        await asyncio.sleep(30)

    monkeypatch.setattr(control, "run_outbound", rings)
    text = OUT + ('callers = ["team-a"]\ncaller_ids = ["+14155550199"]\nsources = ["127.0.0.1/32"]\n'
                  'numbers = { "+14155550199" = "" }\n')
    edge = Edge(load(config(tmp_path, text, EDGE_SECRET=SECRET, TWILIO_SIP_PASSWORD="pw")),
                asyncio.get_running_loop())
    edge.stack.started.set()
    edge.stack.after_hold = lambda call, work: work()  # type: ignore[method-assign]
    return edge


async def test_outbound_calls_count_toward_the_edges_capacity_both_ways(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A burst of outbound calls cannot push the edge past the calls it holds: an inbound INVITE finds the slots
    they hold taken (503 with Retry-After), and each refusal names the limit and what holds it."""
    edge = ringing_edge(tmp_path, monkeypatch)
    edge.capacity = 2
    answered: list[tuple[int, int | None]] = []
    refused = ringing(1)
    refused.respond = (lambda status, retry_after=None, session_id=None, full=False:  # as SipCall.respond takes it
                       answered.append((status, retry_after)))
    api = control.Control(edge, SECRET)
    invite = "INVITE sip:+14155550199@127.0.0.1 SIP/2.0\r\n\r\n"
    order = {"session_id": "s1", "stream_path": "/ws/exotel/t", "to": "+14155550100", "from": "+14155550199",
             "trunk": "twilio", "caller": "team-a"}
    try:
        async with TestClient(TestServer(api.app())) as client:
            signed = {"Authorization": f"Bearer {SECRET}"}
            edge._incoming(ringing(0), "127.0.0.1:5070", invite)  # one inbound call admitted
            assert (await client.post("/calls", json=order, headers=signed)).status == 202
            assert edge.calls_in_flight() == 2
            with caplog.at_level(logging.WARNING, logger="sipedge"):
                edge._incoming(refused, "127.0.0.1:5070", invite)  # the outbound call holds the last slot
            assert answered == [(503, 5)] and edge.refusals.total == 1
            assert "refused 503: the edge's 2 calls, inbound and outbound together, are all taken: 1 inbound" \
                in caplog.text
            outbound = await client.post("/calls", json={**order, "session_id": "s2"}, headers=signed)
            error = (await outbound.json())["error"]
            assert (outbound.status, error["code"], outbound.headers.get("Retry-After")) == (503, "edge_full", "5")
            assert error["message"] == ("the edge's 2 calls, inbound and outbound together, are all taken: "
                                        "1 inbound, 0 bridged to a person, 1 outbound"), error
    finally:
        await api.close()
        await wound_down(edge)


async def test_outbound_calls_of_one_key_leave_the_trunks_a_slot(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The calls the edge places hold at most all but one of its calls: a key placing calls as fast as it may
    gets `503 edge_full` for the last one, and a trunk's INVITE still finds it."""
    edge = ringing_edge(tmp_path, monkeypatch)
    answered: list[int] = []
    trunks = ringing(0)
    trunks.respond = lambda status, retry_after=None, session_id=None, full=False: answered.append(status)
    api = control.Control(edge, SECRET)
    try:
        async with TestClient(TestServer(api.app())) as client:
            signed = {"Authorization": f"Bearer {SECRET}"}
            statuses = []
            for n in range(edge.capacity):
                order = {"session_id": f"s{n}", "stream_path": "/ws/exotel/t", "to": "+14155550100",
                         "from": "+14155550199", "trunk": "twilio", "caller": "team-a"}
                placed = await client.post("/calls", json=order, headers=signed)
                statuses.append((placed.status, (await placed.json()).get("error", {}).get("code")))
            assert statuses == [(202, None)] * (edge.capacity - 1) + [(503, "edge_full")]
            edge._incoming(trunks, "127.0.0.1:5070", "INVITE sip:+14155550199@127.0.0.1 SIP/2.0\r\n\r\n")
            assert 503 not in answered and edge.calls_in_flight() == edge.capacity  # admitted into the kept slot
    finally:
        await api.close()
        await wound_down(edge)
