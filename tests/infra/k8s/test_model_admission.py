"""The model service's admission policy, as the stack sends it, evaluated on the requests a cluster will put to
it (tests/infra/k8s/admission_cel.py): the ReplicaSet controller's pod of the stack's Deployment is admitted;
a pod of another image, with an API token, a host volume or an init container, one a person creates, an
update of its spec and a way into it are refused; the bots' namespace is not this policy's."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.infra.k8s.admission_cel import Call, refusal
from tests.infra.k8s.test_model_service import MODEL_IMAGE, model_program, named

MODEL_POLICY = "voicefleet-k8s-test-model-made-by-its-deployment"
REPLICASETS = "system:serviceaccount:kube-system:replicaset-controller"
SOMEONE = "alice@example.com"  # a person with `edit` in the model's namespace
NAMESPACE = "voicefleet-model"


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    return named(model_program(), "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy",
                 MODEL_POLICY)["spec"]


@pytest.fixture(scope="module")
def pod() -> dict[str, Any]:
    """The pod the ReplicaSet controller creates from the stack's Deployment's template, owned by its ReplicaSet."""
    template = named(model_program(), "kubernetes:apps/v1:Deployment", "voicefleet-model")["spec"]["template"]
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "voicefleet-model-5d8f", "uid": "4f1c-rs",
             "controller": True, "blockOwnerDeletion": True}
    return {"metadata": {**template["metadata"], "name": "voicefleet-model-5d8f-x2", "ownerReferences": [owner]},
            "spec": template["spec"]}


def created(policy: dict[str, Any], pod: dict[str, Any], user: str = REPLICASETS) -> str | None:
    return refusal(policy, Call(user, "CREATE", "", "pods", obj=pod, namespace=NAMESPACE))


def test_the_deployments_pod_is_admitted(policy: dict[str, Any], pod: dict[str, Any]) -> None:
    assert pod["spec"]["containers"][0]["image"] == MODEL_IMAGE
    assert created(policy, pod) is None
    assert created(policy, pod, "system:kube-controller-manager") is None  # without per-controller accounts


def altered(pod: dict[str, Any], change: str) -> dict[str, Any]:
    changed = copy.deepcopy(pod)
    spec = changed["spec"]
    if change == "image":
        spec["containers"][0]["image"] = "registry.example.com/miner@sha256:" + "f" * 64
    elif change == "token":
        spec["automountServiceAccountToken"] = True
    elif change == "no token setting":
        del spec["automountServiceAccountToken"]
    elif change == "host volume":
        spec["volumes"] = [*spec["volumes"], {"name": "host", "hostPath": {"path": "/"}}]
    elif change == "init container":
        spec["initContainers"] = [{"name": "init", "image": MODEL_IMAGE}]
    elif change == "sidecar":
        spec["containers"] = [*spec["containers"], {"name": "side", "image": "busybox"}]
    elif change == "command":  # the model's image, made to run something else
        spec["containers"][0]["command"] = ["python", "-c", "print('not the server')"]
    elif change == "args":
        spec["containers"][0]["args"] = ["--host", "0.0.0.0", "--no-batching"]
    elif change == "no owner":
        del changed["metadata"]["ownerReferences"]
    elif change == "owner not a ReplicaSet":
        changed["metadata"]["ownerReferences"] = [{**changed["metadata"]["ownerReferences"][0], "kind": "Job",
                                                   "apiVersion": "batch/v1"}]
    return changed


@pytest.mark.parametrize("change", ["image", "token", "no token setting", "host volume", "init container", "sidecar",
                                    "command", "args", "no owner", "owner not a ReplicaSet"])
def test_an_altered_pod_is_refused(policy: dict[str, Any], pod: dict[str, Any], change: str) -> None:
    assert created(policy, altered(pod, change)) == (
        "only the model service's Deployment creates pods here, owned by a ReplicaSet, each running the stack's "
        "model image as it starts (no command or args) with no API token, no init container and no volume but "
        "emptyDir, and nobody changes their spec")


def test_a_person_creating_the_very_same_pod_is_refused_naming_them(
        policy: dict[str, Any], pod: dict[str, Any]) -> None:
    assert created(policy, pod, SOMEONE) is not None
    call = Call(SOMEONE, "CREATE", "", "pods", obj=pod, namespace=NAMESPACE)
    assert refusal(policy, call, written=True).endswith("this request came from alice@example.com")


def test_its_spec_is_never_changed_its_labels_may_be(policy: dict[str, Any], pod: dict[str, Any]) -> None:
    relabelled = copy.deepcopy(pod)
    relabelled["metadata"]["labels"]["team"] = "voice"
    assert refusal(policy, Call(SOMEONE, "UPDATE", "", "pods", obj=relabelled, old=pod, namespace=NAMESPACE)) is None
    swapped = altered(pod, "image")
    assert refusal(policy, Call(SOMEONE, "UPDATE", "", "pods", obj=swapped, old=pod, namespace=NAMESPACE)) is not None


@pytest.mark.parametrize("entry", ["exec", "attach", "portforward", "proxy", "ephemeralcontainers"])
def test_nobody_enters_its_pods(policy: dict[str, Any], entry: str) -> None:
    call = Call(SOMEONE, "CREATE", "", "pods", subresource=entry, obj={}, namespace=NAMESPACE)
    assert refusal(policy, call) is not None


def test_the_bots_namespace_is_not_its_to_judge(policy: dict[str, Any], pod: dict[str, Any]) -> None:
    assert refusal(policy, Call(SOMEONE, "CREATE", "", "pods", obj=altered(pod, "image"))) is None
