"""The TURN relay's policy checks on the relay's own configuration, without building a stack
(tests/infra/test_turn_server.py checks the stacks' relays against the same rules)."""

from __future__ import annotations

import json

import pytest

from policy import rules
from stacks.config.turn import TurnSettings
from stacks.shared.turn_server import coturn_config
from tests.infra.policy.test_pack import violations

AWS_INSTANCE, GCE_INSTANCE = "aws:ec2/instance:Instance", "gcp:compute/instance:Instance"
FIREWALL = "gcp:compute/firewall:Firewall"
CONFIG = coturn_config(TurnSettings(mode="managed", shared_secret=None))  # type: ignore[arg-type]


def relay(cloud: str, config: str = CONFIG) -> tuple[str, dict[str, object]]:
    """A relay VM as each cloud's stack declares it: the config in its boot script, role `turn`."""
    if cloud == "aws":
        return AWS_INSTANCE, {"tags": {"role": "turn"}, "userData": f"#!/bin/bash\ncat > /etc/turnserver.conf <<EOF\n"
                                                                   f"{config}EOF\n"}
    return GCE_INSTANCE, {"labels": {"role": "turn"}, "metadata": {"startup-script": config}}


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_the_rendered_relay_configuration_passes(cloud: str) -> None:
    assert violations("turn-not-open-relay", *relay(cloud)) == []


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
@pytest.mark.parametrize("line", rules.TURN_REQUIRED)
def test_a_relay_missing_a_protection_is_refused(cloud: str, line: str) -> None:
    found = violations("turn-not-open-relay", *relay(cloud, CONFIG.replace(f"{line}\n", "")))
    assert found == [f"TURN relay config lacks `{line}` (an open relay reaches private or metadata addresses)"]


@pytest.mark.parametrize("setting", ["no-auth", "allow-loopback-peers", "lt-cred-mech", "cli-password=x"])
def test_a_relay_opened_up_is_refused(setting: str) -> None:
    found = violations("turn-not-open-relay", *relay("aws", CONFIG + f"{setting}\n"))
    assert found == [f"TURN relay config must not set `{setting.split('=')[0]}`"]


@pytest.mark.parametrize("quota", ["user-quota", "total-quota"])
@pytest.mark.parametrize("value", ["0", "", "many", None])
def test_a_relay_needs_positive_quotas(quota: str, value: str | None) -> None:
    lines = [line for line in CONFIG.splitlines() if not line.startswith(f"{quota}=")]
    config = "\n".join([*lines, *([f"{quota}={value}"] if value is not None else [])]) + "\n"
    found = violations("turn-not-open-relay", *relay("gcp", config))
    assert found == [f"TURN relay config needs a positive {quota} (0 means unlimited)"]


def test_only_relays_are_judged_as_relays() -> None:
    bare = CONFIG.replace("use-auth-secret\n", "")
    typ, props = relay("aws", bare)
    assert violations("turn-not-open-relay", typ, {**props, "tags": {"role": "dispatcher"}}) == []
    typ, props = relay("gcp", bare)
    assert violations("turn-not-open-relay", typ, {**props, "labels": {}}) == []
    assert violations("turn-not-open-relay", AWS_INSTANCE, {"tags": {"role": "turn"}}) == []  # unknown at preview


@pytest.mark.parametrize(("protocol", "ports", "allowed"), [
    ("udp", ["3478"], True), ("udp", ["49152-65535"], True), ("udp", ["1024"], True),
    ("tcp", ["3478"], True), ("tcp", ["443"], True),
    ("tcp", ["3479"], False), ("tcp", ["444"], False), ("tcp", ["442"], False), ("tcp", ["3477"], False),
    ("tcp", ["443-3478"], False), ("tcp", ["22"], False), ("udp", ["1023"], False), ("udp", ["53"], False),
    ("udp", ["1024-x"], False), ("udp", ["x"], False), ("udp", [], False), ("all", ["3478"], False),
    ("icmp", ["3478"], False),
])
def test_the_relays_firewall_opens_turn_ports_only(protocol: str, ports: list[str], allowed: bool) -> None:
    props = {"direction": "INGRESS", "targetTags": [rules.TURN_TAG], "allows": [{"protocol": protocol, "ports": ports}]}
    assert (violations("turn-gcp-ingress-turn-ports-only", FIREWALL, props) == []) is allowed
    assert violations("turn-gcp-ingress-turn-ports-only", FIREWALL, {**props, "direction": "EGRESS"}) == []
    assert violations("turn-gcp-ingress-turn-ports-only", FIREWALL, {**props, "targetTags": ["web"]}) == []


def test_a_policy_document_given_as_an_object_is_judged_too() -> None:
    """The engine may hand a policy over already parsed (an object input), not as a JSON string."""
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ecs:*"], "Resource": "*"}]}
    assert violations("no-iam-wildcard-actions", "aws:iam/rolePolicy:RolePolicy", {"policy": document})
    assert violations("no-iam-wildcard-actions", "aws:iam/rolePolicy:RolePolicy", {"policy": json.dumps(document)})
    assert violations("no-iam-wildcard-actions", "aws:iam/rolePolicy:RolePolicy", {"policy": "not json"}) == []


def test_an_inbound_rule_for_other_tagged_vms_does_not_reach_bots() -> None:
    rule = {"direction": "INGRESS", "allows": [{"protocol": "tcp", "ports": ["443"]}], "targetTags": ["web"]}
    assert violations("no-gcp-bot-ingress", FIREWALL, rule) == []
    by_account = {"direction": "INGRESS", "allows": [{"protocol": "tcp"}], "targetServiceAccounts": ["a@p.iam"]}
    assert violations("no-gcp-bot-ingress", FIREWALL, by_account) == []
