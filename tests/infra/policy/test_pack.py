"""Policy pack validators, called directly (building a PolicyPack would block forever)."""

from __future__ import annotations

import json

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from policy import rules
from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import StackRunner
from tests.infra.helpers import ROOT

TAGS = {"project": "voicefleet", "stack": "s", "environment": "dev", "managed-by": "pulumi"}


def options() -> PolicyResourceOptions:
    return PolicyResourceOptions(protect=False, ignore_changes=[], delete_before_replace=None, aliases=[],
                                 custom_timeouts=None, additional_secret_outputs=[])  # type: ignore[arg-type]


def violations(policy_name: str, resource_type: str, props: dict) -> list[str]:
    (policy,) = [p for p in rules.POLICIES if p.name == policy_name]
    found: list[str] = []
    args = ResourceValidationArgs(resource_type, props, f"urn:x::{resource_type}::r", "r", options(), None)
    policy.validate(args, lambda message, urn=None: found.append(message))  # type: ignore[misc, union-attr]
    return found


def policy_doc(*actions: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": list(actions),
                                                               "Resource": "*"}]})


def test_wildcard_iam_action_is_a_violation() -> None:
    assert violations("no-iam-wildcard-actions", "aws:iam/rolePolicy:RolePolicy", {"policy": policy_doc("ecs:*")})
    assert violations("no-iam-wildcard-actions", "aws:iam/rolePolicy:RolePolicy", {"policy": policy_doc("*")})


def test_named_iam_actions_pass() -> None:
    assert not violations("no-iam-wildcard-actions", "aws:iam/rolePolicy:RolePolicy",
                          {"policy": policy_doc("ecs:RunTask")})


def test_ecr_repository_without_scan_on_push_is_a_violation() -> None:
    typ = "aws:ecr/repository:Repository"
    assert violations("ecr-scan-on-push", typ, {"imageScanningConfiguration": {"scanOnPush": False}})
    assert not violations("ecr-scan-on-push", typ, {"imageScanningConfiguration": {"scanOnPush": True}})


def test_log_group_without_retention_is_a_violation() -> None:
    typ = "aws:cloudwatch/logGroup:LogGroup"
    assert violations("log-group-retention", typ, {"name": "x"})
    assert not violations("log-group-retention", typ, {"retentionInDays": 14})


def test_missing_required_tags_or_labels_are_violations() -> None:
    assert violations("required-tags", "aws:ecs/cluster:Cluster", {"tagsAll": {"project": "voicefleet"}})
    assert violations("required-tags", "gcp:compute/instanceTemplate:InstanceTemplate", {"effectiveLabels": {}})
    assert not violations("required-tags", "aws:ecs/cluster:Cluster", {"tagsAll": TAGS})


def test_secret_named_env_value_in_a_task_definition_is_a_violation() -> None:
    definitions = json.dumps([{"name": "d", "environment": [{"name": "DAILY_API_KEY", "value": "k"}]}])
    assert violations("no-plaintext-secrets-in-env", "aws:ecs/taskDefinition:TaskDefinition",
                      {"containerDefinitions": definitions})


def test_secret_by_reference_in_cloud_run_passes_and_plain_value_fails() -> None:
    typ = "gcp:cloudrunv2/service:Service"
    by_ref = {"template": {"containers": [{"envs": [
        {"name": "DAILY_API_KEY", "valueSource": {"secretKeyRef": {"secret": "s"}}}]}]}}
    plain = {"template": {"containers": [{"envs": [{"name": "DISPATCHER_API_KEYS", "value": "k"}]}]}}
    assert not violations("no-plaintext-secrets-in-env", typ, by_ref)
    assert violations("no-plaintext-secrets-in-env", typ, plain)


def test_inbound_firewall_reaching_bots_is_a_violation() -> None:
    typ = "gcp:compute/firewall:Firewall"
    assert violations("no-gcp-bot-ingress", typ, {"direction": "INGRESS", "allows": [{"protocol": "tcp"}],
                                                  "targetTags": [rules.BOT_TAG]})
    assert violations("no-gcp-bot-ingress", typ, {"allows": [{"protocol": "tcp"}]})  # no target: every VM
    assert not violations("no-gcp-bot-ingress", typ, {"direction": "EGRESS", "allows": [{"protocol": "udp"}],
                                                      "targetTags": [rules.BOT_TAG]})


def test_ingress_rule_on_the_bot_security_group_is_a_stack_violation() -> None:
    def resource(typ: str, props: dict, deps: dict | None = None) -> PolicyResource:
        return PolicyResource(typ, props, f"urn:x::{typ}::r", "r", options(), None, None, [], deps or {})

    bot = resource("aws:ec2/securityGroup:SecurityGroup", {"description": rules.BOT_SG_DESCRIPTION})
    rule = resource("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", {"ipProtocol": "tcp"},
                    {"securityGroupId": [bot]})
    found: list[str] = []
    (policy,) = [p for p in rules.POLICIES if p.name == "no-bot-sg-ingress-rules"]
    policy.validate(StackValidationArgs([bot, rule]), lambda m, urn=None: found.append(m))  # type: ignore[misc, union-attr]
    assert len(found) == 1


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_the_program_passes_its_own_resource_policies(stack: StackRunner, cloud: str) -> None:
    run: Run = stack(cloud)
    found = [f"{r.type} {r.name}: {m}" for r in run.registrations for _, (_, check) in rules.RESOURCE_CHECKS.items()
             for m in check(r.type, unwrap(r.inputs))]
    assert found == []


def _locked(lock: str) -> dict[str, str]:
    import tomllib

    return {p["name"]: p["version"] for p in tomllib.loads(lock)["package"] if "version" in p}


def test_the_policy_pack_is_publishable_with_the_versions_the_tests_ran() -> None:
    """`pulumi policy publish policy` uploads policy/ alone (review item 8): it carries its own
    pyproject and lock, pinned to what the repository's tests ran the rules with."""
    pack, repo = (_locked((d / "uv.lock").read_text()) for d in (ROOT / "policy", ROOT))
    for name in ("pulumi-policy", "pulumi"):
        assert pack[name] == repo[name], name
    assert "toolchain: uv" in (ROOT / "policy" / "PulumiPolicy.yaml").read_text()


@pytest.mark.parametrize("name", ["DAILY_API_KEY", "DISPATCHER_API_KEYS", "FLY_API_TOKEN", "BOT_CHANNEL_TOKEN",
                                  "TURN_SECRET", "DB_PASSWORD", "TLS_PRIVATE_KEY"])
def test_secret_looking_plain_env_values_are_violations(name: str) -> None:
    definitions = json.dumps([{"name": "bot", "environment": [{"name": name, "value": "x"}]}])
    assert violations("no-plaintext-secrets-in-env", "aws:ecs/taskDefinition:TaskDefinition",
                      {"containerDefinitions": definitions})


@pytest.mark.parametrize("name", ["MAX_SESSION_SECONDS", "TOKEN_TTL_SECONDS", "SECRET_NAME", "API_KEY_ID", "MACHINES"])
def test_other_plain_env_values_pass(name: str) -> None:
    definitions = json.dumps([{"name": "bot", "environment": [{"name": name, "value": "x"}]}])
    assert not violations("no-plaintext-secrets-in-env", "aws:ecs/taskDefinition:TaskDefinition",
                          {"containerDefinitions": definitions})


def test_a_wildcard_in_a_trust_policy_or_a_lone_statement_object_is_a_violation() -> None:
    lone = json.dumps({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}})
    assert violations("no-iam-wildcard-actions", "aws:iam/rolePolicy:RolePolicy", {"policy": lone})
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:*"}]})
    assert violations("no-iam-wildcard-actions", "aws:iam/role:Role", {"assumeRolePolicy": trust})
    assert not violations("no-iam-wildcard-actions", "aws:s3/bucket:Bucket", {"policy": lone})  # not IAM


def test_only_the_bot_security_group_must_have_no_inline_ingress() -> None:
    typ = "aws:ec2/securityGroup:SecurityGroup"
    ingress = [{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}]
    assert violations("no-bot-sg-inline-ingress", typ, {"description": rules.BOT_SG_DESCRIPTION, "ingress": ingress})
    assert not violations("no-bot-sg-inline-ingress", typ, {"description": rules.BOT_SG_DESCRIPTION, "ingress": []})
    assert not violations("no-bot-sg-inline-ingress", typ, {"description": "load balancer", "ingress": ingress})


def test_every_policy_is_mandatory_and_every_check_is_in_the_pack() -> None:
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in rules.POLICIES)
    names = {p.name for p in rules.POLICIES}
    assert set(rules.RESOURCE_CHECKS) <= names
    assert len(names) == len(rules.POLICIES)


def test_azure_registry_admin_user_vault_access_policies_and_plain_text_store_are_violations() -> None:
    assert list(rules.azure_locked_down("azure-native:containerregistry:Registry", {"adminUserEnabled": True}))
    assert list(rules.azure_locked_down("azure-native:keyvault:Vault", {"properties": {}}))
    open_vault = {"enableRbacAuthorization": True, "networkAcls": {"defaultAction": "Allow"}}
    found = list(rules.azure_locked_down("azure-native:keyvault:Vault", {"properties": open_vault}))
    assert found == ["the Key Vault's network rules must deny by default (its private endpoint, listed addresses "
                     "at most)"]
    assert list(rules.azure_locked_down("azure-native:redisenterprise:Database", {"clientProtocol": "Plaintext"}))
    assert not list(rules.azure_locked_down("azure-native:redisenterprise:Database", {"clientProtocol": "Encrypted"}))


def test_a_container_app_secret_held_as_a_value_or_a_plain_secret_env_is_a_violation() -> None:
    app = "azure-native:app:ContainerApp"
    held = {"configuration": {"secrets": [{"name": "daily-api-key", "value": "x"}]}}
    assert list(rules.azure_secrets_in_key_vault(app, held))
    referenced = {"configuration": {"secrets": [
        {"name": "k", "keyVaultUrl": "https://v/secrets/k/1", "identity": "i"}]}}
    assert not list(rules.azure_secrets_in_key_vault(app, referenced))
    plain = {"template": {"containers": [{"env": [{"name": "DAILY_API_KEY", "value": "x"},
                                                  {"name": "BOT_CHANNEL_TOKEN", "value": "y"}]}]}}
    assert len(list(rules.plaintext_secret_env(app, plain))) == 2
    assert list(rules.channel_token_by_reference(app, plain))


def test_an_untagged_azure_resource_with_a_location_is_a_violation() -> None:
    assert list(rules.required_tags("azure-native:keyvault:Vault", {"location": "westeurope", "tags": {"stack": "s"}}))
    assert not list(rules.required_tags("azure-native:authorization:RoleAssignment", {"scope": "/x"}))
