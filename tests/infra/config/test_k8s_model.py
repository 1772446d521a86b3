"""`k8sModelImage` and its keys (stacks/config/k8s_model.py): each bad value refused naming the key and the way
forward; a key of it set without the image, or misspelt, refused rather than left unread."""

from __future__ import annotations

import json

import pytest

from stacks.config.settings import SettingsError
from tests.infra.config.test_k8s import error
from tests.infra.conftest import StackRunner
from tests.infra.k8s.conftest import ALL_SECRETS
from tests.infra.k8s.test_model_service import MODEL_IMAGE, named


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"k8sModelImage": "moshi:latest"},
     "voicefleet:k8sModelImage must be the model server's image by digest, registry/name@sha256:<64 hex>"),
    ({"k8sModelReplicas": "2"},
     "voicefleet:k8sModelReplicas must be 0 or 1 (got 2): the dispatcher reads one capacity from one URL"),
    ({"k8sModelNamespace": "voicefleet-bots"},
     "voicefleet:k8sModelNamespace must be a namespace of its own, not 'voicefleet-bots'"),
    ({"k8sModelPort": "80"}, "voicefleet:k8sModelPort must be at least 1024 (got 80)"),
    ({"k8sModelGpus": "0"}, "voicefleet:k8sModelGpus must be at least 1 (got 0)"),
    ({"k8sModelCpu": "lots"}, "voicefleet:k8sModelCpu must be CPU as cores or millicores"),
    ({"k8sModelMemory": "64G"}, "voicefleet:k8sModelMemory must be memory in Mi or Gi, like 64Gi (got '64G')"),
    ({"k8sModelNodeSelector": json.dumps(["gpu"])}, "voicefleet:k8sModelNodeSelector must be a map of node labels"),
    ({"k8sModelNodeSelector": json.dumps({"gpu type": "h100"})},
     "voicefleet:k8sModelNodeSelector must name node labels as Kubernetes writes them"),
    ({"k8sModelTolerations": json.dumps([{"key": "nvidia.com/gpu", "operator": "Exists", "value": "true"}])},
     "voicefleet:k8sModelTolerations has a value with the operator Exists, which the API server refuses"),
    ({"k8sModelTolerations": json.dumps([{"key": "gpu", "effect": "NoExecute", "tolerationSeconds": "60"}])},
     "voicefleet:k8sModelTolerations holds tolerationSeconds: a toleration here has key, operator, value, effect"),
    ({"k8sModelTolerations": json.dumps([{"key": "gpu", "effect": "Sometimes"}])},
     "voicefleet:k8sModelTolerations must have an operator of Exists or Equal and an effect of NoSchedule"),
])
def test_a_bad_value_is_refused_naming_the_key(stack: StackRunner, overrides: dict[str, str], expected: str) -> None:
    message = error(stack, **{"k8sModelImage": MODEL_IMAGE, **overrides})
    assert expected in message


def test_a_key_of_the_model_without_its_image_is_refused_with_the_way_forward(stack: StackRunner) -> None:
    message = error(stack, k8sModelGpus="2")
    assert "voicefleet:k8sModelGpus is used with k8sModelImage only" in message
    assert "pulumi config rm k8sModelGpus, or set k8sModelImage" in message


def test_a_misspelt_key_is_refused_naming_the_nearest(stack: StackRunner) -> None:
    with pytest.raises(SettingsError) as caught:
        stack("k8s", secrets=ALL_SECRETS, k8sModelImage=MODEL_IMAGE, k8sModelGpu="2")
    assert "voicefleet:k8sModelGpu is no stack key: did you mean k8sModelGpus?" in str(caught.value)


def test_empty_tolerations_are_none(stack: StackRunner) -> None:
    """`[]` says the GPU nodes have no taint: unlike an unset key, it adds no toleration."""
    run = stack("k8s", secrets=ALL_SECRETS, k8sModelImage=MODEL_IMAGE, k8sModelTolerations="[]")
    pod = named(run, "kubernetes:apps/v1:Deployment", "voicefleet-model")["spec"]["template"]["spec"]
    assert "tolerations" not in pod


@pytest.mark.parametrize(("key", "value"), [("k8sModelTolerations", "[]"),
                                            ("k8sModelNodeSelector", json.dumps({"gpu": "h100"})),
                                            ("k8sModelCpu", "8")])
def test_a_value_other_than_pulumi_yamls_default_without_the_image_is_refused(
        stack: StackRunner, key: str, value: str) -> None:
    """The CLI hands the program every default (test_settings.py's every-default test): another value is a
    person's, and nothing reads it without the image."""
    assert f"voicefleet:{key} is used with k8sModelImage only" in error(stack, **{key: value})
