"""The `sipEdge` stack key: each field lands on the edge's own TOML key (the rendered file loaded by
sipedge.config's own loader), and a key the edge, the cloud or a trunk's safety refuses is refused at
config check, naming what to change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sipedge.config import TrunkPrice
from sipedge.config import load as load_edge
from stacks.config.reader import SettingsError
from stacks.config.sip_edge import SipEdgeSettings, capacity_note, edge_environment, render
from stacks.config.sip_edge_keys import SipEdgeKey
from stacks.tools.mocks import unwrap
from tests.infra.aws.test_sip_edge import API_KEY, EDGE, EDGE_SECRETS, HTTPS, NAME, run_with_edge
from tests.infra.conftest import StackRunner

FULL: dict[str, Any] = {"enabled": True, "rtpPorts": "41000-41199", "answerSeconds": 20, "drainSeconds": 120,
                        "trunks": [
    {"name": "twilio", "sources": ["54.172.60.0/30"], "mediaSources": ["168.86.128.0/18"],
     "numbers": {"+14155550199": "team-a", "+14155550198": "ops"},
     "terminationUri": "sip:example.pstn.twilio.com", "cps": 2, "ringSeconds": 25, "callers": ["team-a"],
     "destinations": ["+1*"], "callerIds": ["+14155550199"], "digestUsername": "voicefleet",
     "usdPerMinute": {"inbound": 0.0085, "outbound": 0.013}, "billingIncrementSeconds": 6},
    {"name": "pbx", "sources": ["198.51.100.7/32"], "mediaSources": ["198.51.100.7/32"],
     "numbers": {"200": "ops"}, "registrar": "sip:pbx.example.com", "registrarRetrySeconds": 60,
     "digestUsername": "edge", "usdPerMinute": 0.002, "unansweredInvites": 2}]}

EDGE_VARIABLES = ("SIP_EDGE_API_KEY_TEAM_A", "SIP_EDGE_API_KEY_OPS", "SIP_EDGE_DIGEST_TWILIO", "SIP_EDGE_DIGEST_PBX",
                  "SIP_EDGE_SECRET")  # what FULL's file names


def test_every_key_lands_on_the_edges_own_and_the_edge_loads_the_file(tmp_path: Path) -> None:
    key = SipEdgeKey.model_validate(FULL)
    # The file names the variables only: the secrets' values (outputs in a stack) are not read here.
    named: Any = dict.fromkeys(EDGE_VARIABLES)
    settings = SipEdgeSettings(key, 41000, 200, named)
    path = tmp_path / "edge.toml"
    path.write_text(render(settings, dispatcher_url="https://voice.example.com", sip_address="10.0.0.10",
                           public_address="203.0.113.10"))
    env = {**edge_environment(settings), "SIP_EDGE_API_KEY_OPS": "ops-key"}
    edge = load_edge({"SIP_EDGE_CONFIG": str(path), **env})
    assert (edge.dispatcher_url, edge.sip_address, edge.advertised, edge.sip_port) == (
        "https://voice.example.com", "10.0.0.10", "203.0.113.10", 5060)
    assert (edge.rtp_port, edge.rtp_port_count, edge.answer_seconds, edge.workers) == (41000, 200, 20.0, 1)
    assert edge.drain_seconds == 120
    assert (edge.control_address, edge.control_port, edge.control_secret) == ("10.0.0.10", 5080, "x" * 48)
    twilio, pbx = edge.trunks
    assert [str(n) for n in twilio.sources] == ["54.172.60.0/30"]
    assert twilio.api_keys == {"+14155550198": "ops-key", "+14155550199": "x" * 48}
    assert (twilio.termination_uri, twilio.cps, twilio.ring_seconds) == ("sip:example.pstn.twilio.com", 2.0, 25.0)
    assert (twilio.callers, twilio.destinations, twilio.caller_ids) == (("team-a",), ("+1*",), ("+14155550199",))
    assert (twilio.digest_username, twilio.digest_password, twilio.registrar) == ("voicefleet", "x" * 48, None)
    assert (pbx.registrar, pbx.digest_username, pbx.api_keys) == ("sip:pbx.example.com", "edge", {"200": "ops-key"})
    assert pbx.destinations == ("+*",) and pbx.caller_ids == ("200",)  # the edge's own defaults, left unset
    assert (pbx.registrar_retry_seconds, twilio.registrar_retry_seconds) == (60, 30)  # twilio's: the edge's own
    assert (pbx.unanswered_invites, twilio.unanswered_invites) == (2, None)  # twilio's: the front's default share
    assert twilio.price == TrunkPrice(0.0085, 0.013, 6) and pbx.price == TrunkPrice(0.002, 0.002, 60)


def test_the_ports_a_stack_leaves_fixed_may_be_given_where_the_edge_runs_beside_others(tmp_path: Path) -> None:
    named: Any = dict.fromkeys(EDGE_VARIABLES)
    settings = SipEdgeSettings(SipEdgeKey.model_validate(FULL), 41000, 200, named)
    path = tmp_path / "edge.toml"
    path.write_text(render(settings, dispatcher_url="http://127.0.0.1:8080", sip_address="127.0.0.1",
                           public_address="127.0.0.1", sip_port=15060, control_port=15080))
    edge = load_edge({"SIP_EDGE_CONFIG": str(path), **edge_environment(settings)})
    assert (edge.sip_port, edge.control_address, edge.control_port) == (15060, "127.0.0.1", 15080)


def test_a_trunk_that_means_any_destination_says_so(stack: StackRunner) -> None:
    run = run_with_edge(stack, _trunk(destinations=None, allowAnyDestination=True))
    assert "destinations" not in unwrap(run.one("aws:ec2/instance:Instance", NAME).inputs)["userData"]  # the edge's +*


def test_a_plain_http_stack_refuses_the_edge(stack: StackRunner) -> None:
    with pytest.raises(SettingsError) as refused:
        stack("aws", secrets=EDGE_SECRETS, sipEdge=json.dumps(EDGE))  # allowPlainHttp, no certificateArn
    assert "sends across the internet in clear: set certificateArn" in str(refused.value)
    with pytest.raises(SettingsError) as refused:
        stack("aws", secrets=EDGE_SECRETS, sipEdge=json.dumps(EDGE), certificateArn=HTTPS["certificateArn"])
    assert "not the load balancer's own name: set dispatcherDomain" in str(refused.value)


def _refused(stack: StackRunner, edge: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(SettingsError) as refused:
        run_with_edge(stack, edge, **kwargs)
    return str(refused.value)


def _trunk(**changes: Any) -> dict[str, Any]:
    return {**EDGE, "trunks": [{**EDGE["trunks"][0], **changes}]}


@pytest.mark.parametrize(("edge", "said"), [
    (_trunk(sources=["0.0.0.0/0"]), "toll-fraud scanners do within minutes"),
    (_trunk(destinations=None), "twilio.destinations: a trunk with a terminationUri names the numbers"),
    (_trunk(destinations=["+1*", "+*"]), "or set allowAnyDestination: true on the trunk to mean it"),
    (_trunk(sources=["0.0.0.0/1", "128.0.0.0/1"]), "0.0.0.0/1 is wider than /16"),
    (_trunk(sources=["3.0.0.0/8"]), "or set allowAnySource: true on the trunk to mean it"),
    (_trunk(sources=[], numbers={}), "a trunk that only places calls needs them too"),
    (_trunk(mediaSources=[]), "mediaSources: list the networks the trunk's calls' RTP comes from"),
    (_trunk(mediaSources=["0.0.0.0/0"]), "or set allowAnyMediaSource: true"),
    (_trunk(mediaSources=["0.0.0.0/1", "128.0.0.0/1"]), "0.0.0.0/1 is wider than /16"),
    (_trunk(mediaSources=["168.86.128.1/18"]), "is not a CIDR block"),
    (_trunk(sources=["54.172.60.1/30"]), "is not a CIDR block"),
    (_trunk(sources=["sip.twilio.com"]), "is not a CIDR block"),
    (_trunk(numbers={"+14155550199": "Team A"}), "must name a dispatcherApiKeys key"),
    (_trunk(port=5061), "trunks.0.port: Extra inputs are not permitted"),
    ({**EDGE, "workers": 17, "rtpPorts": "40000-40099"}, "the edge would refuse it"),
    (_trunk(terminationUri="sip:example.pstn.twilio.com;transport=tcp"),
     "the edge would refuse it: trunk 'twilio': termination_uri sip:example.pstn.twilio.com;transport=tcp: the edge "
     "speaks SIP over UDP"),
    ({**EDGE, "rtpPorts": "40001-40100"}, "rtpPorts: must be a range"),
    ({**EDGE, "instanceType": "c7g.large"}, "x86_64 instanceType"),
    ({**EDGE, "machineType": "n2-standard-2"}, "machineType: this aws stack's edge has no such key; its host's size "
                                               "is instanceType"),
    ({**EDGE, "trunks": []}, "trunks: Tuple should have at least 1 item"),
    ({**EDGE, "drainSeconds": -1}, "drainSeconds: Input should be greater than or equal to 0"),
    ({**EDGE, "drainSeconds": 7201}, "drainSeconds: Input should be less than or equal to 7200"),
    ({**EDGE, "drainSeconds": "300"}, "drainSeconds: Input should be a valid integer"),  # --path sets a number
])
def test_a_key_that_cannot_work_is_refused_naming_what_to_change(stack: StackRunner, edge: dict[str, Any],
                                                                 said: str) -> None:
    refused = _refused(stack, edge)
    assert "voicefleet:sipEdge" in refused and said in refused


def test_any_source_is_taken_only_when_the_trunk_says_so(stack: StackRunner) -> None:
    run = run_with_edge(stack, _trunk(sources=["0.0.0.0/0"], allowAnySource=True))
    assert ("udp", 5060, "0.0.0.0/0") in {(r.inputs["ipProtocol"], r.inputs["fromPort"], r.inputs["cidrIpv4"])
                                          for r in run.of_type(
                                              "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
                                          if r.inputs["securityGroupId"] == f"{NAME}-id" and "cidrIpv4" in r.inputs}


def test_digest_passwords_in_plain_text_are_refused(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="sipEdgeDigestPasswords is stored in plain text"):
        stack("aws", secrets={"voicefleet:dispatcherApiKeys": "team-a:k", **_admin()}, sipEdge=json.dumps(EDGE),
              **HTTPS, sipEdgeDigestPasswords=json.dumps({"twilio": "p"}),
              plaintext=("voicefleet:sipEdgeDigestPasswords",))


INBOUND = {**EDGE, "workers": 2, "trunks": [{**EDGE["trunks"][0], "inboundDigestUsername": "carrier"}]}


def test_a_trunks_inbound_credential_lands_on_the_edges_with_its_password_from_the_secret_store(
        stack: StackRunner) -> None:
    run = run_with_edge(stack, INBOUND, secrets={"voicefleet:sipEdgeInboundDigestPasswords":
                                                 json.dumps({"twilio": "SENTINEL-inbound-password-42"})})
    user_data = unwrap(run.one("aws:ec2/instance:Instance", NAME).inputs)["userData"]
    assert 'inbound_digest_username = "carrier"' in user_data
    assert 'inbound_digest_password_env = "SIP_EDGE_INBOUND_DIGEST_TWILIO"' in user_data
    assert "SENTINEL-inbound-password-42" not in user_data  # in the secret store only
    stored = [r.name for r in run.of_type("aws:secretsmanager/secretVersion:SecretVersion")
              if unwrap(r.inputs["secretString"]) == "SENTINEL-inbound-password-42"]
    assert len(stored) == 1 and "inbound-digest-twilio" in stored[0], stored


# A trunk with both credentials: each map's password checked alike (the one its username asks for).
INBOUND_PASSWORD = "q" * 20  # the shortest the edge takes (sipedge/inbound_password.py)
BOTH = {"voicefleet:sipEdgeDigestPasswords": json.dumps({"twilio": "p"}),
        "voicefleet:sipEdgeInboundDigestPasswords": json.dumps({"twilio": INBOUND_PASSWORD})}


@pytest.mark.parametrize("key", ["voicefleet:sipEdgeDigestPasswords", "voicefleet:sipEdgeInboundDigestPasswords"])
@pytest.mark.parametrize(("passwords", "said"), [
    ({}, "needs 'twilio'"), ({"twilio": "a", "pbx": "b"}, "has 'pbx'"), ({"twilio": "two\nlines"}, "of one line")])
def test_digest_passwords_match_the_trunks_that_use_one(stack: StackRunner, key: str, passwords: dict[str, str],
                                                        said: str) -> None:
    refused = _refused(stack, INBOUND, secrets={**BOTH, key: json.dumps(passwords)})
    assert key in refused and said in refused


def test_an_inbound_credential_on_one_worker_builds_kamailio_into_the_hosts_image(stack: StackRunner) -> None:
    """The credential is the front's to check, so the one-worker edge runs Kamailio: the host's image holds it."""
    run = run_with_edge(stack, {**INBOUND, "workers": 1}, secrets={
        "voicefleet:sipEdgeInboundDigestPasswords": json.dumps({"twilio": INBOUND_PASSWORD})})
    user_data = unwrap(run.one("aws:ec2/instance:Instance", NAME).inputs)["userData"]
    assert "--no-install-recommends kamailio" in user_data and "workers = 1" in user_data


def test_an_inbound_credential_on_one_worker_opens_the_workers_rtp_share_and_says_kamailio_runs() -> None:
    """Behind the front the one worker takes an even share of the range, as several do (sipedge/worker_place.py)."""
    fronted = SipEdgeSettings(SipEdgeKey.model_validate({**INBOUND, "workers": 1}), 40000, 401, {}, "aws")
    assert fronted.front and fronted.rtp_ports_used == (40000, 40399)
    assert "1 worker(s) behind Kamailio (trunk twilio's inbound digest credential)" in capacity_note(fronted)
    alone = SipEdgeSettings(SipEdgeKey.model_validate({**EDGE, "workers": 1}), 40000, 401, {}, "aws")
    assert not alone.front and alone.rtp_ports_used == (40000, 40400) and "Kamailio" not in capacity_note(alone)


def test_a_short_inbound_password_is_refused_naming_how_to_make_one(stack: StackRunner) -> None:
    """The edge's loader, run by the stack, sees a stand-in for each secret: the stack checks the length itself."""
    refused = _refused(stack, INBOUND, secrets={
        "voicefleet:sipEdgeInboundDigestPasswords": json.dumps({"twilio": "q" * 19})})
    assert "sipEdgeInboundDigestPasswords" in refused and "twilio is 19 characters, under 20" in refused
    assert "openssl rand -base64 24" in refused


def _admin() -> dict[str, str]:
    from tests.infra.conftest import SECRETS
    return {k: v for k, v in SECRETS.items() if k != "voicefleet:dispatcherApiKeys"}


def test_a_number_runs_as_a_key_the_dispatcher_holds(stack: StackRunner) -> None:
    with pytest.raises(Exception, match="numbers name the API key 'team-b'"):
        run_with_edge(stack, _trunk(numbers={"+14155550199": "team-b"}))
    run = run_with_edge(stack)
    (version,) = [r for r in run.of_type("aws:secretsmanager/secretVersion:SecretVersion")
                  if r.name.endswith("sip-edge-api-key-team-a")]
    assert unwrap(version.inputs["secretString"]) == API_KEY  # the key itself, not the dispatcher's whole list


@pytest.mark.parametrize("key", ["nodeSelector", "nodeTaint", "publicAddress"])
def test_a_vm_hosted_edge_refuses_the_kubernetes_nodes_keys(stack: StackRunner, key: str) -> None:
    value = {"nodeSelector": {"voicefleet.io/sip-edge": "true"}, "nodeTaint": "voicefleet.io/sip-edge:NoSchedule",
             "publicAddress": "198.51.100.20"}[key]
    refused = _refused(stack, {**EDGE, key: value})
    assert f"{key}: this aws stack's edge has no such key; its host's size is instanceType" in refused


def test_an_edge_left_disabled_changes_nothing(stack: StackRunner) -> None:
    run = run_with_edge(stack, {**EDGE, "enabled": False})
    assert not [r for r in run.registrations if "sip-edge" in r.name]


def test_a_bot_secret_may_not_take_a_name_of_the_edges(stack: StackRunner) -> None:
    """One secret store, one value per name: a bot's SIP_EDGE_SECRET would be overwritten by the edge's
    (or the other way round), and the dispatcher keeps SIP_EDGE_* from every bot."""
    refused = _refused(stack, EDGE, secrets={"voicefleet:botSecrets": json.dumps({"SIP_EDGE_SECRET": "mine"})})
    assert "voicefleet:botSecrets" in refused and "SIP_EDGE_SECRET" in refused
