"""The Azure Policy that bounds what the dispatcher's launch role can create (stacks/azure/launch_policy.py):
its rule, as the stack writes it, evaluated against the request the dispatcher really sends
(dispatcher/machines/aci/groups.py builds it from the stack's own settings) and against forged ones."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dispatcher.machines.aci.groups import group_body
from dispatcher.machines.aci.settings import AciSettings
from stacks.azure.launch_policy import ALIASES, GROUPS
from stacks.tools.mocks import Run, unwrap
from tests.infra.azure.test_stack import env
from tests.infra.conftest import StackRunner
from tests.support.azure_policy import PATHS, denies

DEFINITION = "azure-native:authorization:PolicyDefinition"
ASSIGNMENT = "azure-native:authorization:PolicyAssignment"
FOREIGN_SUBNET = ("/subscriptions/0b1f6a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b/resourceGroups/elsewhere/providers/"
                  "Microsoft.Network/virtualNetworks/other/subnets/open")
DIGEST = "sha256:" + "ab" * 32


def rule(run: Run) -> dict[str, Any]:
    return unwrap(run.one(DEFINITION).inputs)["policyRule"]


def settings(run: Run) -> AciSettings:
    return AciSettings.from_env({name: e["value"] for name, e in env(run).items() if "value" in e})


def launched(run: Run, image: str | None = None) -> dict[str, Any]:
    """The body the aci provider PUTs for a session, built by its own code from the stack's settings."""
    return group_body(settings(run), {"DAILY_ROOM_URL": "https://example.daily.co/r", "BOT_TOKEN": "t"},
                      {"voicefleet-session": "s-1"}, image=image)


def test_the_policy_is_a_deny_assigned_on_the_stacks_resource_group_before_the_dispatcher_exists(full: Run) -> None:
    definition, assignment = unwrap(full.one(DEFINITION).inputs), unwrap(full.one(ASSIGNMENT).inputs)
    assert definition["policyRule"]["then"] == {"effect": "Deny"} and definition["mode"] == "All"
    assert assignment["scope"] == full.one("azure-native:resources:ResourceGroup").outputs["id"]
    assert assignment["policyDefinitionId"] == full.one(DEFINITION).outputs["id"]
    assert assignment["enforcementMode"] == "Default"
    # No launch before the policy is in place: the app (and so every replica) waits for the assignment.
    assert full.one(ASSIGNMENT).urn in full.one("azure-native:app:ContainerApp").dependencies


def test_the_rule_pins_the_stacks_registry_bot_repositories_by_digest_and_the_bots_subnet(full: Run) -> None:
    written = repr(rule(full))
    aci = settings(full)
    assert f"'{aci.registry_server}/bot@sha256:*'" in written
    assert f"'{aci.registry_server}/bot-webrtc@sha256:*'" in written
    assert "/dispatcher@" not in written  # the dispatcher's image is not a bot
    assert f"'{aci.subnet_id}'" in written and aci.subnet_id.endswith("/subnets/bots")
    # Every alias it names is one the evaluator maps (and so one the tests below exercise).
    assert set(ALIASES) <= set(PATHS)


def test_what_the_dispatcher_launches_is_allowed(full: Run) -> None:
    aci = settings(full)
    assert aci.webrtc_image is not None
    for image in (None, aci.webrtc_image):
        assert not denies(rule(full), GROUPS, launched(full, image))


def forged(run: Run) -> dict[str, dict[str, Any]]:
    aci = settings(run)
    body = launched(run)
    variants: dict[str, dict[str, Any]] = {}

    def variant(name: str) -> dict[str, Any]:
        variants[name] = copy.deepcopy(body)
        return variants[name]

    def container(found: dict[str, Any]) -> dict[str, Any]:
        return found["properties"]["containers"][0]["properties"]

    container(variant("foreign image"))["image"] = f"docker.io/library/alpine@{DIGEST}"
    container(variant("a tag, not a digest"))["image"] = f"{aci.registry_server}/bot:latest"
    container(variant("the registry's dispatcher image"))["image"] = f"{aci.registry_server}/dispatcher@{DIGEST}"
    container(variant("a look-alike registry"))["image"] = f"{aci.registry_server}.evil.example/bot@{DIGEST}"
    container(variant("a command"))["command"] = ["python", "-c", "print(1)"]
    sidecar = variant("a second, foreign container")
    sidecar["properties"]["containers"].append({"name": "x", "properties": {
        "image": f"docker.io/library/alpine@{DIGEST}", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}})
    variant("a public address")["properties"]["ipAddress"] = {"type": "Public", "ports": [{"port": 80}]}
    variant("a volume")["properties"]["volumes"] = [{"name": "v", "gitRepo": {"repository": "https://x/y"}}]
    variant("its own DNS servers")["properties"]["dnsConfig"] = {"nameServers": ["198.51.100.53"]}
    variant("logs to a workspace")["properties"]["diagnostics"] = {
        "logAnalytics": {"workspaceId": "w", "workspaceKey": "k"}}
    del variant("no subnet")["properties"]["subnetIds"]
    variant("another subnet")["properties"]["subnetIds"] = [{"id": FOREIGN_SUBNET}]
    variant("a second subnet")["properties"]["subnetIds"].append({"id": FOREIGN_SUBNET})
    return variants


def test_forged_groups_are_refused(full: Run) -> None:
    allowed = [name for name, body in forged(full).items() if not denies(rule(full), GROUPS, body)]
    assert not allowed, f"the policy lets through: {allowed}"


def test_without_turn_the_webrtc_repository_is_not_admitted(stack: StackRunner) -> None:
    run = stack("azure")
    webrtc = copy.deepcopy(launched(run))
    image = f"{settings(run).registry_server}/bot-webrtc@{DIGEST}"
    webrtc["properties"]["containers"][0]["properties"]["image"] = image
    assert not denies(rule(run), GROUPS, launched(run)) and denies(rule(run), GROUPS, webrtc)


@pytest.mark.parametrize("operator", ["in", "contains"])
def test_the_evaluator_refuses_what_it_cannot_evaluate(full: Run, operator: str) -> None:
    """A rule outside the evaluator's subset fails the tests instead of reading as "allowed"."""
    changed = copy.deepcopy(rule(full))
    changed["if"]["allOf"][0] = {"field": "type", operator: [GROUPS]}
    with pytest.raises(ValueError, match="not in this evaluator's subset"):
        denies(changed, GROUPS, launched(full))
