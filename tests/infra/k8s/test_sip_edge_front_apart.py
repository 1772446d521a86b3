"""A Kubernetes SIP edge with Kamailio's front (stacks/k8s/sip_edge.py): the front in a container of its own, as a
user of its own, holding the inbound digest passwords alone; the workers' container every other secret but those;
both the tokens the stack derives for them (stacks/k8s/sip_edge_tokens.py); a fence for each user; and the node's
documented table holding Kamailio's user as it holds the workers'."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from sipedge.edge_part import DRAIN_TOKEN_VARIABLE, shared_tokens
from sipedge.node_fence import ENDPOINTS
from sipedge.worker_place import CALL_TOKEN_VARIABLE, TOKEN_VARIABLE
from stacks.k8s.sip_edge import FRONT_COMMAND, WORKERS_COMMAND
from stacks.tools.mocks import Run, unwrap
from tests.infra.aws.test_sip_edge import API_KEY, DIGEST
from tests.infra.conftest import StackRunner
from tests.infra.k8s.test_sip_edge import (
    DEPLOYMENT,
    FRONTED_EDGE,
    FRONTED_SECRETS,
    INBOUND,
    SECRET,
    _Admitted,
    _documented_table,
    _edge_secret,
    _named,
    _pod,
    run_k8s_edge,
)

TOKENS = {TOKEN_VARIABLE, CALL_TOKEN_VARIABLE, DRAIN_TOKEN_VARIABLE}
INBOUND_VARIABLE = "SIP_EDGE_INBOUND_DIGEST_PBX"


@pytest.fixture
def fronted_run(stack: StackRunner) -> Run:
    return run_k8s_edge(stack, FRONTED_EDGE, secrets=FRONTED_SECRETS)  # the program cache runs it once


def _parts(run: Run) -> tuple[dict[str, Any], dict[str, Any]]:
    workers, front = _pod(run)["containers"]
    assert (workers["command"], front["command"]) == (WORKERS_COMMAND, FRONT_COMMAND)
    return workers, front


def _by_reference(container: dict[str, Any]) -> set[str]:
    return {e["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}


def test_kamailio_runs_as_a_user_of_its_own_holding_the_inbound_passwords_and_the_tokens_alone(
        fronted_run: Run) -> None:
    workers, front = _parts(fronted_run)
    assert front["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                        "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                                        "runAsUser": 10002, "runAsGroup": 10002}
    assert "runAsUser" not in workers["securityContext"]  # the pod's, 10001
    assert not _pod(fronted_run).get("shareProcessNamespace")  # neither container sees the other's processes
    assert _by_reference(front) == {INBOUND_VARIABLE, *TOKENS}
    # The workers' container: every other secret (the numbers' keys, outbound passwords, control key, credential).
    assert _by_reference(workers) == {"SIP_EDGE_API_KEY_TEAM_A", "SIP_EDGE_CONTROL_KEY", "SIP_EDGE_CREDENTIAL",
                                      "SIP_EDGE_DIGEST_TWILIO", *TOKENS}
    deployment = json.dumps(unwrap(_named(fronted_run, DEPLOYMENT, "sip-edge").inputs))
    assert INBOUND not in deployment and API_KEY not in deployment and DIGEST not in deployment


def test_the_fronts_scratch_folder_is_its_own(fronted_run: Run) -> None:
    workers, front = _parts(fronted_run)
    mounts = {c["name"]: {m["name"]: m["mountPath"] for m in c["volumeMounts"]} for c in (workers, front)}
    assert mounts["sip-edge"] == {"config": "/etc/sipedge", "tmp": "/tmp", "shm": "/dev/shm"}
    assert mounts["sip-edge-front"] == {"config": "/etc/sipedge", "front-tmp": "/tmp", "front-shm": "/dev/shm"}
    assert {"name": "TMPDIR", "value": "/tmp"} in front["env"]


def test_each_part_has_a_small_dev_shm_of_its_own_in_memory(fronted_run: Run) -> None:
    """The runtime's /dev/shm is the whole pod's (cri-o test/shm.bats "ctr check shared /dev/shm"); a container's
    own mount there takes its place (containerd's CRI mounts the sandbox's only when none is asked for)."""
    volumes = {v["name"]: v for v in _pod(fronted_run)["volumes"]}
    for name in ("shm", "front-shm"):
        assert volumes[name]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Mi"}  # tmpfs, charged as memory


def test_both_parts_hold_the_same_tokens_derived_for_the_edge_and_no_other_secret(fronted_run: Run) -> None:
    data = _edge_secret(fronted_run)
    tokens = {variable: data[variable] for variable in TOKENS}
    assert len(set(tokens.values())) == 3 and all(len(token) == 43 for token in tokens.values())
    made = {str(unwrap(r.inputs)["stringData"]["SIP_EDGE_SECRET"]) for r in fronted_run.of_type(SECRET)
            if "SIP_EDGE_SECRET" in unwrap(r.inputs).get("stringData", {})}
    assert made and not any(secret in token for secret in made for token in tokens.values())
    shared_tokens(tokens)  # what each part reads at its start
    workers, front = _parts(fronted_run)
    for container in (workers, front):
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if e["name"] in TOKENS}
        assert refs == {variable: variable for variable in TOKENS}


def test_each_user_of_a_fronted_pod_has_its_fence(fronted_run: Run) -> None:
    fence, front_fence = _pod(fronted_run)["initContainers"]
    assert "runAsUser" not in fence["securityContext"] and fence["command"][-1] == "tcp:5081-5083"
    assert front_fence["securityContext"]["runAsUser"] == 10002
    assert front_fence["command"] == ["/usr/local/bin/python", "-m", "sipedge.node_fence", "--admitted",
                                      "udp:5061-5063"]  # Kamailio needs the workers' SIP ports, not their control


@pytest.mark.parametrize("uid", [10001, 10002])
def test_the_documented_table_refuses_each_user_the_nodes_credentials(uid: int) -> None:
    lines = [line for line in _documented_table().splitlines() if f"skuid {uid} " in line]
    refused = [ipaddress.ip_network(cidr.strip()) for line in lines if line.rstrip().endswith("reject")
               for cidr in line.split("daddr", 1)[1].split("reject", 1)[0].strip(" {}").split(",")]
    for host, _port in ENDPOINTS:
        assert any(ipaddress.ip_address(host) in network for network in refused), (uid, host)


def test_the_documented_table_admits_kamailios_user_to_the_workers_sip_ports_alone() -> None:
    admitted = [_Admitted.of(line) for line in _documented_table().splitlines()
                if "skuid 10002 " in line and line.rstrip().endswith("accept")]
    assert [(r.protocol, r.low, r.high) for r in admitted] == [("udp", 5061, 5124)]
