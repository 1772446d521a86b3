"""The coordination store's components, each run on its own under the recording mocks: private,
encrypted in transit, authenticated, reachable only by the dispatcher, bounded; and the naming and
password rules the providers would refuse, modelled here because mocks do not run them."""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Callable

import pulumi
import pytest
from pulumi.runtime import mocks as pulumi_mocks

from stacks import gcp_store
from stacks.aws import store as aws_store
from stacks.config.limits import valid_store_password
from stacks.config.reader import SettingsError
from stacks.tools.mocks import RecordingMocks, RecordingMonitor, Registration, Run, is_secret, unwrap
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import container

PASSWORD = "SENTINEL-store-password-0123456789"


def run(build: Callable[[], object]) -> list[Registration]:
    mocks = RecordingMocks(region="eu-west-1")
    monitor = RecordingMonitor(mocks)

    def _run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            pulumi_mocks.set_mocks(mocks, project="voicefleet", stack="test", preview=False, monitor=monitor)
            from pulumi.runtime.stack import run_pulumi_func

            loop.run_until_complete(run_pulumi_func(build))
        finally:
            loop.close()
            asyncio.set_event_loop(None)

    contextvars.Context().run(_run)
    return list(monitor.registrations)


def of_type(registrations: list[Registration], typ: str) -> list[Registration]:
    return [r for r in registrations if r.type == typ]


@pytest.fixture
def aws() -> list[Registration]:
    def build() -> None:
        store = aws_store.CoordinationStore("vf-store", aws_store.CoordinationStoreArgs(
            name="voicefleet-aws-prod", vpc_id="vpc-1", subnet_ids=["subnet-a", "subnet-b"],
            password=pulumi.Output.secret(PASSWORD), protect=True))
        store.allow_from("sg-dispatcher")
        pulumi.export("url", store.url)

    return run(build)


def test_aws_store_is_valkey_serverless_private_bounded_and_protected(aws: list[Registration]) -> None:
    (cache,) = of_type(aws, "aws:elasticache/serverlessCache:ServerlessCache")
    inputs = unwrap(cache.inputs)
    assert (inputs["engine"], inputs["majorEngineVersion"]) == ("valkey", "8")
    assert inputs["subnetIds"] == ["subnet-a", "subnet-b"] and len(inputs["securityGroupIds"]) == 1
    assert inputs["cacheUsageLimits"] == {"dataStorage": {"maximum": 1, "unit": "GB"},
                                          "ecpuPerSeconds": [{"maximum": 5000}]}
    assert cache.protect and inputs["userGroupId"] == "voicefleet-aws-prod"


def test_aws_store_lets_in_the_dispatcher_on_valkeys_ports_and_nothing_else(aws: list[Registration]) -> None:
    ingress = of_type(aws, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert [(unwrap(r.inputs)["fromPort"], unwrap(r.inputs)["toPort"], unwrap(r.inputs)["referencedSecurityGroupId"])
            for r in ingress] == [(6379, 6380, "sg-dispatcher")]
    assert all("cidrIpv4" not in r.inputs for r in ingress)
    (egress,) = of_type(aws, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    assert unwrap(egress.inputs)["securityGroupId"] == "sg-dispatcher"  # the dispatcher may reach it, only it


def test_aws_store_users_the_dispatchers_is_scoped_and_default_is_off(aws: list[Registration]) -> None:
    users = {unwrap(u.inputs)["userName"]: u for u in of_type(aws, "aws:elasticache/user:User")}
    assert set(users) == {"default", "voicefleet"}
    default = unwrap(users["default"].inputs)
    assert default["accessString"].startswith("off ")
    assert default["authenticationMode"]["type"] == "no-password-required"
    dispatcher = users["voicefleet"]
    access = unwrap(dispatcher.inputs)["accessString"]
    assert "~{voicefleet}:*" in access and "&{voicefleet}:*" in access and "-@dangerous" in access
    assert "~*" not in access and "+@all" not in access
    passwords = dispatcher.inputs["authenticationMode"]
    assert is_secret(passwords) or is_secret(passwords["passwords"])  # never in plain state
    (group,) = of_type(aws, "aws:elasticache/userGroup:UserGroup")
    assert sorted(unwrap(group.inputs)["userIds"]) == ["voicefleet-aws-prod-app", "voicefleet-aws-prod-off"]


def test_aws_store_url_is_tls_and_carries_no_password(aws: list[Registration]) -> None:
    everything = json.dumps([unwrap(r.inputs) for r in aws if r.type != "aws:elasticache/user:User"], default=str)
    assert PASSWORD not in everything


@pytest.mark.parametrize(("name", "ok"), [
    ("voicefleet-aws-prod", True), ("a", True), ("a" * 40, True), ("a" * 41, False), ("1abc", False),
    ("ab--c", False), ("abc-", False), ("Abc", False), ("ab_c", False),
])
def test_aws_store_names_follow_elasticaches_rule(name: str, ok: bool) -> None:
    assert aws_store.valid_name(name) is ok


@pytest.mark.parametrize(("password", "ok"), [
    ("x" * 16, True), ("x" * 128, True), ("x" * 15, False), ("x" * 129, False), ("x" * 15 + " ", False),
    ("x" * 15 + "@", False), ("x" * 15 + "/", False), ("x" * 15 + '"', False), ("x" * 15 + "\n", False),
])
def test_aws_store_passwords_follow_elasticaches_rule(password: str, ok: bool) -> None:
    assert valid_store_password(password) is ok


@pytest.mark.parametrize("name", ["voicefleet--prod", "x" * 37])  # the second: its users' ids pass 40
def test_aws_store_refuses_a_name_elasticache_would(name: str) -> None:
    with pytest.raises(ValueError, match="store name"):
        run(lambda: aws_store.CoordinationStore("x", aws_store.CoordinationStoreArgs(
            name=name, vpc_id="v", subnet_ids=["s"], password="p" * 20, protect=False)))


@pytest.fixture
def gcp() -> list[Registration]:
    def build() -> None:
        store = gcp_store.CoordinationStore("vf-store", gcp_store.CoordinationStoreArgs(
            instance_id="voicefleet-gcp-prod", region="us-central1", project="p", network_id="net",
            subnetwork_id="subnet", dispatcher_member="serviceAccount:dispatcher@p.iam.gserviceaccount.com",
            node_type="STANDARD_SMALL", replicas=1, protect=True))
        pulumi.export("url", store.url)

    return run(build)


def test_gcp_store_is_memorystore_valkey_with_iam_auth_and_tls(gcp: list[Registration]) -> None:
    (instance,) = of_type(gcp, "gcp:memorystore/instance:Instance")
    inputs = unwrap(instance.inputs)
    assert (inputs["authorizationMode"], inputs["transitEncryptionMode"]) == ("IAM_AUTH", "SERVER_AUTHENTICATION")
    assert (inputs["mode"], inputs["shardCount"], inputs["replicaCount"]) == ("CLUSTER_DISABLED", 1, 1)
    assert inputs["desiredAutoCreatedEndpoints"] == [{"network": "net", "projectId": "p"}]
    assert inputs["deletionProtectionEnabled"] and instance.protect
    (policy,) = of_type(gcp, "gcp:networkconnectivity/serviceConnectionPolicy:ServiceConnectionPolicy")
    policy_inputs = unwrap(policy.inputs)
    assert policy_inputs["serviceClass"] == "gcp-memorystore"
    assert policy_inputs["pscConfig"]["subnetworks"] == ["subnet"]


def test_gcp_store_connection_role_goes_to_the_dispatcher_only(gcp: list[Registration]) -> None:
    members = [unwrap(m.inputs) for m in of_type(gcp, "gcp:projects/iAMMember:IAMMember")]
    assert members == [{"project": "p", "role": "roles/memorystore.dbConnectionUser",
                        "member": "serviceAccount:dispatcher@p.iam.gserviceaccount.com"}]


@pytest.mark.parametrize(("name", "ok"), [
    ("voicefleet-gcp-prod", True), ("abcd", True), ("abc", False), ("a" * 63, True), ("a" * 64, False),
    ("abc-", False), ("-abc", False), ("Abcd", False), ("ab_cd", False), ("1abc", True),
])
def test_gcp_store_instance_ids_follow_memorystores_rule(name: str, ok: bool) -> None:
    assert gcp_store.valid_instance_id(name) is ok


def test_gcp_store_endpoint_and_ca_are_read_from_memorystores_nested_outputs() -> None:
    endpoints = [{"connections": [{"pscAutoConnection": {"connectionType": "CONNECTION_TYPE_PRIMARY",
                                                         "ipAddress": "10.0.0.5", "port": 6379}}]}]
    assert gcp_store._first_address(endpoints) == "10.0.0.5"
    cas = [{"caCerts": [{"certificates": ["-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----"]}]}]
    assert gcp_store._ca_pem(cas).startswith("-----BEGIN CERTIFICATE-----")
    assert gcp_store._first_address([]) == ""


STORE_SECRETS = {"voicefleet:storePassword": PASSWORD}


def two_replicas(stack: StackRunner) -> Run:
    secrets = {**SECRETS, **CHANNEL_SECRETS, **STORE_SECRETS}
    return stack("aws", secrets=secrets, **{**CHANNEL["aws"], "dispatcherCount": "2"})


def test_two_aws_replicas_with_the_channel_share_a_store_the_dispatcher_reaches_by_secret(stack: StackRunner) -> None:
    run = two_replicas(stack)
    (cache,) = run.of_type("aws:elasticache/serverlessCache:ServerlessCache")
    assert unwrap(cache.inputs)["name"] == "voicefleet-aws-test-kv"
    (service,) = run.of_type("aws:ecs/service:Service")
    assert unwrap(service.inputs)["desiredCount"] == 2
    dispatcher = container(run, "-dispatcher")
    env = {e["name"]: e["value"] for e in dispatcher["environment"]}
    assert env["REDIS_URL"].startswith("rediss://voicefleet@")
    secrets = {s["name"]: s["valueFrom"] for s in dispatcher["secrets"]}
    assert secrets["REDIS_PASSWORD"].startswith("arn:aws:secretsmanager:")  # by reference, never the value
    assert PASSWORD not in json.dumps(dispatcher)
    (ingress,) = [r for r in run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
                  if r.name.endswith("-store-in-dispatcher")]
    (app_sg,) = [r for r in run.of_type("aws:ec2/securityGroup:SecurityGroup") if r.name.endswith("-dispatcher-app")]
    assert unwrap(ingress.inputs)["referencedSecurityGroupId"] == f"{app_sg.name}-id"


def test_more_than_one_aws_replica_needs_the_store_password(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="voicefleet:storePassword is required with dispatcherCount=2"):
        stack("aws", secrets={**SECRETS, **CHANNEL_SECRETS}, **{**CHANNEL["aws"], "dispatcherCount": "2"})


def test_a_store_password_elasticache_would_refuse_is_refused(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="voicefleet:storePassword must be 16-128"):
        stack("aws", secrets={**SECRETS, **CHANNEL_SECRETS, "voicefleet:storePassword": "has@at-sign-0123456789"},
              **{**CHANNEL["aws"], "dispatcherCount": "2"})


def test_one_aws_replica_has_no_store(stack: StackRunner) -> None:
    run = stack("aws", secrets={**SECRETS, **CHANNEL_SECRETS, **STORE_SECRETS}, **CHANNEL["aws"])
    assert run.of_type("aws:elasticache/serverlessCache:ServerlessCache") == []
    env = {e["name"] for e in container(run, "-dispatcher")["environment"]}
    assert "REDIS_URL" not in env


def test_several_gcp_instances_with_the_channel_share_memorystore_through_the_vpc(stack: StackRunner) -> None:
    run = stack("gcp", secrets={**SECRETS, **CHANNEL_SECRETS},
                **{**CHANNEL["gcp"], "dispatcherMinInstances": "2", "dispatcherMaxInstances": "3"})
    (instance,) = run.of_type("gcp:memorystore/instance:Instance")
    assert unwrap(instance.inputs)["authorizationMode"] == "IAM_AUTH"
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    template = unwrap(service.inputs)["template"]
    envs = {e["name"]: e.get("value") for e in template["containers"][0]["envs"]}
    assert envs["REDIS_AUTH"] == "gcp-iam" and envs["REDIS_URL"].startswith("rediss://")
    assert "REDIS_CA_CERT" in envs and "REDIS_PASSWORD" not in envs
    assert template["vpcAccess"]["egress"] == "PRIVATE_RANGES_ONLY"
    assert template["scaling"]["minInstanceCount"] == 2
    (member,) = [unwrap(m.inputs) for m in run.of_type("gcp:projects/iAMMember:IAMMember")
                 if unwrap(m.inputs)["role"] == "roles/memorystore.dbConnectionUser"]
    assert member["member"].startswith("serviceAccount:") and "dispatcher" in member["member"]


def test_one_gcp_instance_has_no_store(stack: StackRunner) -> None:
    run = stack("gcp", secrets={**SECRETS, **CHANNEL_SECRETS}, **CHANNEL["gcp"])
    assert run.of_type("gcp:memorystore/instance:Instance") == []
