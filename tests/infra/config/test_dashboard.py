"""`dashboardEnabled` in the stacks: true gives every cloud's dispatcher DASHBOARD_ENABLED=1 (GET /dashboard
served); false, the default, leaves the variable out, which a cloud dispatcher reads as no page; anything
else is refused naming the key."""

from __future__ import annotations

import re

import pytest

from dispatcher.api.dashboard_setting import dashboard_enabled
from stacks.azure.dispatcher import SECRETS_DIGEST_VARIABLE
from stacks.shared import contract
from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import StackRunner
from tests.infra.helpers import container

# Each cloud's dispatcher environment (plain values only), and the contract its keys must equal.
CONTRACT = {"aws": contract.ECS_ENV, "gcp": contract.GCE_ENV, "azure": contract.ACI_ENV}


def plain_environment(cloud: str, run: Run) -> dict[str, str]:
    if cloud == "aws":
        entries = container(run, "-dispatcher")["environment"]
    elif cloud == "gcp":
        (service,) = run.of_type("gcp:cloudrunv2/service:Service")
        entries = unwrap(service.inputs)["template"]["containers"][0]["envs"]
    else:
        entries = unwrap(run.one("azure-native:app:ContainerApp").inputs)["template"]["containers"][0]["env"]
    return {e["name"]: e["value"] for e in entries if "value" in e}


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_dashboard_enabled_serves_the_page_in_every_cloud(stack: StackRunner, cloud: str) -> None:
    env = plain_environment(cloud, stack(cloud, dashboardEnabled="true"))
    assert env["DASHBOARD_ENABLED"] == "1"
    assert dashboard_enabled(env, local=False) is True  # what the dispatcher makes of it
    assert set(env) - set(CONTRACT[cloud]) - {SECRETS_DIGEST_VARIABLE} == set(contract.DASHBOARD_ENV)


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_by_default_the_variable_is_left_out_and_the_cloud_dispatcher_serves_no_page(
        stack: StackRunner, cloud: str) -> None:
    for run in (stack(cloud), stack(cloud, dashboardEnabled="false")):
        env = plain_environment(cloud, run)
        assert "DASHBOARD_ENABLED" not in env
        assert dashboard_enabled(env, local=False) is False


def test_a_value_other_than_true_or_false_is_refused_naming_the_key(stack: StackRunner) -> None:
    with pytest.raises(Exception, match=re.escape("voicefleet:dashboardEnabled must be true or false (got '1')")):
        stack("aws", dashboardEnabled="1")
