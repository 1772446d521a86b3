"""Review of the Kubernetes SIP edge with its own image and Kamailio front: what the node's table lets the edge's
user reach on loopback, where an inbound digest password reaches in the pod, and what the docs say the pod is."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from stacks.config.sip_edge import SipEdgeSettings
from stacks.config.sip_edge_keys import SipEdgeKey
from stacks.k8s.sip_edge import EDGE_COMMAND, WORKERS_COMMAND, node_fence, node_firewall
from stacks.tools.mocks import Run
from tests.infra.k8s.test_sip_edge import (  # noqa: F401 - edge_run, fronted_run: fixtures used by name
    DEPLOYMENT,
    K8S_EDGE,
    _Admitted,
    _documented_table,
    _named,
    _pod,
    edge_run,
    fronted_run,
)

SIP_MD = Path(__file__).parents[3] / "docs" / "sip.md"
MAX_WORKERS = 64  # stacks/config/sip_edge_keys.py: workers le=64


def _admitted_tcp_loopback(table: str) -> set[int]:
    admitted = [_Admitted.of(line) for line in table.splitlines() if line.rstrip().endswith("accept")]
    return {port for rule in admitted if rule.protocol == "tcp" and rule.host == "127.0.0.1"
            for port in range(rule.low, rule.high + 1) if port != rule.but}


def test_the_nodes_table_admits_no_more_loopback_tcp_ports_than_the_edge_has_workers() -> None:
    admitted = _admitted_tcp_loopback(_documented_table())
    assert len(admitted) <= MAX_WORKERS, f"{len(admitted)} loopback TCP ports admitted to the edge's user"
    # Concretely: a listener as containerd's streaming server makes it (127.0.0.1, port 0) is not admitted.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        assert daemon.getsockname()[1] not in admitted


def test_the_firewall_rule_for_three_workers_names_their_control_ports_not_the_ephemeral_range() -> None:
    edge = SipEdgeSettings(SipEdgeKey.model_validate({**K8S_EDGE, "workers": 3}), 40000, 400, {}, "k8s")
    (front,) = [rule for rule in node_firewall(edge) if "127.0.0.1" in rule and "admitted" in rule]
    assert "32768-60999" not in front, front


def test_the_inbound_digest_password_is_not_in_the_workers_container(fronted_run: Run) -> None:  # noqa: F811
    """Any process of a container may read its PID 1's /proc/PID/environ (same uid, dumpable): the inbound digest
    password must not be a variable of the container the workers, which parse every admitted call, run in."""
    pod = _pod(fronted_run)
    (workers,) = [c for c in pod["containers"] if c["command"] == WORKERS_COMMAND]
    names = {entry["name"] for entry in workers.get("env", [])}
    assert "SIP_EDGE_INBOUND_DIGEST_PBX" not in names


def test_the_docs_admission_row_names_the_edge_image_and_its_commands() -> None:
    """The admission policy now admits the edge's own image (not the dispatcher's) and two commands (the PJSIP
    install is gone): the docs row said otherwise."""
    row = next(line for line in SIP_MD.read_text().splitlines() if line.startswith("| admission | Pod Security"))
    commands = [EDGE_COMMAND, node_fence()]  # stacks/k8s/sip_edge.py SipEdge: the policy's `commands`
    assert "the dispatcher's image" not in row and "the edge's image by digest" in row
    assert f"the edge's {['no', 'one', 'two', 'three'][len(commands)]} commands" in row


def test_the_docs_say_how_kamailios_security_updates_reach_the_edge_image() -> None:
    section = SIP_MD.read_text().split("### On Kubernetes", 1)[1].split("\n### ", 1)[0]
    assert "security update" in section


def test_the_edges_deployment_waits_for_the_admission_policy_that_admits_its_image(edge_run: Run) -> None:  # noqa: F811
    deployment = _named(edge_run, DEPLOYMENT, "sip-edge")
    policies = {r.urn for r in edge_run.registrations if "voicefleet:k8s:SipEdgeAdmission" in r.urn}
    assert policies and policies & set(deployment.dependencies), deployment.dependencies


def test_the_fence_of_a_fronted_pod_fails_on_a_node_whose_table_refuses_the_fronts_loopback(
        fronted_run: Run, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from sipedge import node_fence as fence_module

    def refused(*_args: object, **_kwargs: object) -> None:  # the old table: every address the fence tries rejects
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket.socket, "connect", refused)
    monkeypatch.setattr(socket.socket, "sendto", refused)
    monkeypatch.setattr(socket.socket, "send", refused)
    fences = _pod(fronted_run)["initContainers"]  # the workers' user's, and Kamailio's
    assert len(fences) == 2
    for fence in fences:
        assert fence["command"][:3] == node_fence()[:3]  # python -m sipedge.node_fence, with the pod's arguments
        assert fence_module.main(fence["command"][3:]) != 0
