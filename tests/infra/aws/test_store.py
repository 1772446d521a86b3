"""ElastiCache Serverless for Valkey, run on its own under the recording mocks and in a stack: private,
encrypted in transit, authenticated, reachable only by the dispatcher, bounded; and the naming and
password rules the provider would refuse, modelled here because mocks do not run them."""

from __future__ import annotations

import json

import pulumi
import pytest

from stacks.aws import store as aws_store
from stacks.config.limits import valid_store_password
from stacks.config.reader import SettingsError
from stacks.shared import store_access
from stacks.tools.mocks import Registration, Run, is_secret, unwrap
from stacks.tools.preflight import readback
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import container, of_type, run_component

PASSWORD = "SENTINEL-store-password-0123456789"


@pytest.fixture
def aws() -> list[Registration]:
    def build() -> None:
        store = aws_store.CoordinationStore("vf-store", aws_store.CoordinationStoreArgs(
            name="voicefleet-aws-prod", vpc_id="vpc-1", subnet_ids=["subnet-a", "subnet-b"],
            password=pulumi.Output.secret(PASSWORD), protect=True, ecpu_per_second=45_000))
        store.allow_from("sg-dispatcher")
        pulumi.export("url", store.url)

    return run_component(build)


def test_aws_store_is_valkey_serverless_private_bounded_and_protected(aws: list[Registration]) -> None:
    (cache,) = of_type(aws, "aws:elasticache/serverlessCache:ServerlessCache")
    inputs = unwrap(cache.inputs)
    assert (inputs["engine"], inputs["majorEngineVersion"]) == ("valkey", "8")
    assert inputs["subnetIds"] == ["subnet-a", "subnet-b"] and len(inputs["securityGroupIds"]) == 1
    assert inputs["cacheUsageLimits"] == {"dataStorage": {"maximum": 1, "unit": "GB"},
                                          "ecpuPerSeconds": [{"maximum": 45_000}]}
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
    assert default["accessString"] == "off resetchannels -@all"
    # A VALKEY user group takes only users that sign in by password or IAM (ElastiCache's RBAC
    # page; terraform-provider-aws `user_group_test.go` gives its valkey group's `default` a password).
    assert default["authenticationMode"]["type"] == "password"
    (off_password,) = default["authenticationMode"]["passwords"]
    assert valid_store_password(off_password) and off_password != PASSWORD
    assert off_password == aws_store.default_password(PASSWORD)  # stable: no change on the next `up`
    off_mode = users["default"].inputs["authenticationMode"]
    assert is_secret(off_mode) or is_secret(off_mode["passwords"])
    dispatcher = users["voicefleet"]
    # The string the replicas' and store's tests sign in with (tests/support/redis_server.py), which
    # tests/infra/aws/test_store_access.py holds to the dispatcher's own commands.
    assert unwrap(dispatcher.inputs)["accessString"] == store_access.ACCESS
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
        run_component(lambda: aws_store.CoordinationStore("x", aws_store.CoordinationStoreArgs(
            name=name, vpc_id="v", subnet_ids=["s"], password="p" * 20, protect=False, ecpu_per_second=5000)))


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


def test_a_store_password_elasticache_would_refuse_is_refused(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="voicefleet:storePassword must be 16-128"):
        stack("aws", secrets={**SECRETS, **CHANNEL_SECRETS, "voicefleet:storePassword": "has@at-sign-0123456789"},
              **{**CHANNEL["aws"], "dispatcherCount": "2"})


def test_one_aws_replica_has_no_store(stack: StackRunner) -> None:
    run = stack("aws", secrets={**SECRETS, **CHANNEL_SECRETS, **STORE_SECRETS}, **CHANNEL["aws"])
    assert run.of_type("aws:elasticache/serverlessCache:ServerlessCache") == []
    env = {e["name"] for e in container(run, "-dispatcher")["environment"]}
    assert "REDIS_URL" not in env


def build_store() -> None:
    aws_store.CoordinationStore("vf-store", aws_store.CoordinationStoreArgs(
        name="voicefleet-aws-prod", vpc_id="vpc-1", subnet_ids=["subnet-a", "subnet-b"],
        password=pulumi.Output.secret(PASSWORD), protect=True, ecpu_per_second=45_000))


def test_a_second_preview_shows_no_change_of_the_store_users(aws: list[Registration]) -> None:
    """ElastiCache returns an access string as its engine renders it and the provider keeps that
    (the mocks return it so): each user's string comes back as sent."""
    users = of_type(aws, "aws:elasticache/user:User")
    assert [unwrap(u.outputs)["accessString"] for u in users] == [unwrap(u.inputs)["accessString"] for u in users]
    assert readback.violations(users) == []


def test_an_access_string_the_service_rewrites_is_refused_at_preview(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aws_store, "ACCESS", "on ~{voicefleet}:* -@all +get")  # no channel rule: `&*` comes back
    with pytest.raises(Exception, match="would return it as 'on ~{voicefleet}:\\* &\\* -@all \\+get'"):
        run_component(build_store)
    # and were it sent, the mocks' read-back has the preflight show the change a second preview would
    monkeypatch.setattr(aws_store, "checked_access", lambda access: access)
    (user,) = [u for u in of_type(run_component(build_store), "aws:elasticache/user:User")
               if unwrap(u.inputs)["userName"] == "voicefleet"]
    assert unwrap(user.outputs)["accessString"] == "on ~{voicefleet}:* &* -@all +get"
    (violation,) = readback.violations([user])
    assert "every preview would show it changing" in violation
