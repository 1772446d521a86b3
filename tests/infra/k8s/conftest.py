"""Readers over a k8s stack's recording (its fixtures, `k8s` and `k8s_stack`, are tests/infra/conftest.py's)."""

from __future__ import annotations

from typing import Any

from stacks.tools.mocks import Registration, Run, unwrap
from tests.infra.conftest import K8S_STACK_SECRETS, StackRunner

K8sRunner = StackRunner
ALL_SECRETS = K8S_STACK_SECRETS


def spec(reg: Registration) -> dict[str, Any]:
    return unwrap(reg.inputs)["spec"]


def pod_spec(run: Run) -> dict[str, Any]:
    """The dispatcher's pod (beside it, with k8sModelImage, is the model service's Deployment)."""
    (dispatcher,) = [r for r in run.of_type("kubernetes:apps/v1:Deployment")
                     if unwrap(r.inputs)["metadata"]["name"] == "dispatcher"]
    return spec(dispatcher)["template"]["spec"]


def container_env(run: Run) -> dict[str, dict[str, Any]]:
    (container,) = pod_spec(run)["containers"]
    return {entry["name"]: entry for entry in container["env"]}


def dispatcher_secret(run: Run) -> Registration:
    """The dispatcher's Secret (its settings' secrets), not the channel certificate's (stacks/k8s/channel_tls.py)."""
    (secret,) = [r for r in run.of_type("kubernetes:core/v1:Secret") if r.name.endswith("-dispatcher")]
    return secret
