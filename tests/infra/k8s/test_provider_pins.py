"""The k8s provider's behaviour is pinned in the program, not left to the deployer's environment: the
Python SDK reads PULUMI_K8S_* variables only for an argument the program leaves unset."""

from __future__ import annotations

import pytest

from stacks.tools.mocks import run_program, unwrap
from tests.infra.conftest import config_for
from tests.infra.k8s.conftest import ALL_SECRETS


def test_server_side_apply_stays_on_whatever_the_environment_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_K8S_ENABLE_SERVER_SIDE_APPLY", "false")
    monkeypatch.setenv("PULUMI_K8S_UPSERT_EXISTING_OBJECTS", "true")
    run = run_program(config_for("k8s", {}, ALL_SECRETS), list(ALL_SECRETS), stack="k8s-test")
    (provider,) = run.of_type("pulumi:providers:kubernetes")
    inputs = unwrap(provider.inputs)
    assert (inputs.get("enableServerSideApply"), inputs.get("upsertExistingObjects")) == ("true", "false")
