"""The SIP edge's privileged namespace admits the edge's own pod only (stacks/k8s/sip_edge_admission.py):
the policy the stack sends, evaluated by CEL on the pod the edge's Deployment makes and on pods a user with
`edit` rights there could make instead."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from stacks.tools.mocks import Run, unwrap
from tests.fakes.k8s_schema import schema_problems
from tests.infra.conftest import StackRunner
from tests.infra.k8s.admission_cel import Call, refusal
from tests.infra.k8s.test_sip_edge import FRONTED_EDGE, FRONTED_SECRETS, NAMESPACE, _pod, run_k8s_edge

POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"


def _integral(value: Any) -> Any:
    """The mocks' numbers are floats; the API server's pod has integers, as JSON writes them."""
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return int(value) if isinstance(value, float) and value.is_integer() else value


@pytest.fixture
def edge(stack: StackRunner) -> tuple[dict[str, Any], dict[str, Any]]:
    run: Run = run_k8s_edge(stack)
    (policy,) = [unwrap(r.inputs) for r in run.of_type(POLICY) if r.name.endswith("sip-edge-admission")]
    (binding,) = [unwrap(r.inputs) for r in run.of_type(BINDING) if r.name.endswith("sip-edge-admission")]
    assert policy["metadata"]["name"] == f"{NAMESPACE}-own-pod-only" == binding["spec"]["policyName"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    return _integral(policy["spec"]), {"metadata": {"name": "sip-edge-x"}, "spec": _integral(_pod(run))}


def _create(spec: dict[str, Any], pod: dict[str, Any], namespace: str = NAMESPACE) -> str | None:
    return refusal(spec, Call("system:serviceaccount:kube-system:replicaset-controller", "CREATE", "", "pods",
                              obj=pod, namespace=namespace))


def test_the_edges_own_pod_is_admitted(edge: tuple[dict[str, Any], dict[str, Any]]) -> None:
    spec, pod = edge
    assert _create(spec, pod) is None


def _host_path(pod: dict[str, Any]) -> None:
    pod["spec"]["volumes"].append({"name": "root", "hostPath": {"path": "/"}})


def _privileged(pod: dict[str, Any]) -> None:
    pod["spec"]["containers"][0]["securityContext"]["privileged"] = True


def _other_image(pod: dict[str, Any]) -> None:
    pod["spec"]["initContainers"][0]["image"] = "busybox:latest"


def _other_command(pod: dict[str, Any]) -> None:
    pod["spec"]["containers"][0]["command"] = ["/bin/sh", "-c", "curl http://169.254.169.254/"]


def _root(pod: dict[str, Any]) -> None:
    pod["spec"]["securityContext"]["runAsUser"] = 0


def _container_root(pod: dict[str, Any]) -> None:
    pod["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0


def _host_pid(pod: dict[str, Any]) -> None:
    pod["spec"]["hostPID"] = True


def _capability(pod: dict[str, Any]) -> None:
    pod["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]


def _extra_container(pod: dict[str, Any]) -> None:
    pod["spec"]["containers"].append({"name": "shell", "image": "alpine", "command": ["/bin/sh"]})


@pytest.mark.parametrize("change", [_host_path, _privileged, _other_image, _other_command, _root, _container_root,
                                    _host_pid, _capability, _extra_container])
def test_any_other_pod_is_refused_naming_the_rule(edge: tuple[dict[str, Any], dict[str, Any]],
                                                   change: Callable[[dict[str, Any]], None]) -> None:
    spec, pod = edge
    changed = copy.deepcopy(pod)
    change(changed)
    said = _create(spec, changed)
    assert said is not None and "admits the edge's own pod only" in said and "docs/sip.md#on-kubernetes" in said


def test_the_policy_holds_the_edges_namespace_only(edge: tuple[dict[str, Any], dict[str, Any]]) -> None:
    spec, pod = edge
    changed = copy.deepcopy(pod)
    _host_path(changed)
    assert _create(spec, changed, namespace="voicefleet") is None  # the stack's others are Pod Security's



def test_the_policy_is_valid_for_the_api_server(edge: tuple[dict[str, Any], dict[str, Any]]) -> None:
    spec, _ = edge
    body = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": f"{NAMESPACE}-own-pod-only"}, "spec": spec}
    assert schema_problems("validatingadmissionpolicy-admissionregistration-v1", body) == ([], [])


@pytest.fixture
def fronted(stack: StackRunner) -> tuple[dict[str, Any], dict[str, Any]]:
    """A pod with the front: Kamailio's container (uid 10002) beside the workers' (uid 10001)."""
    run: Run = run_k8s_edge(stack, FRONTED_EDGE, secrets=FRONTED_SECRETS)
    (policy,) = [unwrap(r.inputs) for r in run.of_type(POLICY) if r.name.endswith("sip-edge-admission")]
    return _integral(policy["spec"]), {"metadata": {"name": "sip-edge-x"}, "spec": _integral(_pod(run))}


def _front_as(uid: int) -> Callable[[dict[str, Any]], None]:
    def change(pod: dict[str, Any]) -> None:
        pod["spec"]["containers"][1]["securityContext"]["runAsUser"] = uid
    return change


def _front_command_as_workers(pod: dict[str, Any]) -> None:
    pod["spec"]["containers"][1]["command"] = ["/bin/sh", "-c", "cat /proc/*/environ"]


def test_the_fronted_pod_is_admitted_with_kamailio_as_its_own_user(
        fronted: tuple[dict[str, Any], dict[str, Any]]) -> None:
    spec, pod = fronted
    assert pod["spec"]["containers"][1]["securityContext"]["runAsUser"] == 10002
    assert _create(spec, pod) is None


@pytest.mark.parametrize("change", [_front_as(0), _front_as(10003), _front_command_as_workers])
def test_a_fronted_pod_with_another_user_or_command_is_refused(fronted: tuple[dict[str, Any], dict[str, Any]],
                                                                change: Callable[[dict[str, Any]], None]) -> None:
    spec, pod = fronted
    changed = copy.deepcopy(pod)
    change(changed)
    assert _create(spec, changed) is not None
