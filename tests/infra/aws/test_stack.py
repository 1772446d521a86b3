"""AWS stack: what a platform reviewer must be able to trust, asserted on recorded inputs."""

from __future__ import annotations

import json
import re

import pytest

from stacks.shared import contract
from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import StackRunner
from tests.infra.helpers import actions, component_outputs, container, mock_id, policy_statements

SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


def bot_sg_id(run: Run) -> str:
    (bot,) = [r for r in run.of_type(SG) if r.inputs["description"] == "voicefleet bots: no ingress"]
    return mock_id(bot)


def test_bot_security_group_has_no_ingress(aws: Run) -> None:
    sg = bot_sg_id(aws)
    assert [r for r in aws.of_type(INGRESS) if r.inputs["securityGroupId"] == sg] == []
    # And no inline rules, which would bypass the standalone-rule check above.
    (bot,) = [r for r in aws.of_type(SG) if mock_id(r) == sg]
    assert not bot.inputs.get("ingress") and not bot.inputs.get("egress")


def test_bot_security_group_lets_udp_and_https_out(aws: Run) -> None:
    sg = bot_sg_id(aws)
    rules = {(r.inputs["ipProtocol"], r.inputs["fromPort"], r.inputs["toPort"], r.inputs["cidrIpv4"])
             for r in aws.of_type(EGRESS) if r.inputs["securityGroupId"] == sg}
    assert rules == {("udp", 0, 65535, "0.0.0.0/0"), ("tcp", 443, 443, "0.0.0.0/0")}


def test_no_security_group_mixes_inline_and_standalone_rules(aws: Run) -> None:
    assert all(not r.inputs.get("ingress") and not r.inputs.get("egress") for r in aws.of_type(SG))


def test_no_iam_statement_has_a_wildcard_action(aws: Run) -> None:
    statements = policy_statements(aws)
    assert statements, "no policy documents recorded"
    assert [a for s in statements for a in actions(s) if "*" in a] == []


def test_run_task_only_for_the_bot_family_on_this_cluster(aws: Run) -> None:
    (run_task,) = [s for s in policy_statements(aws) if "ecs:RunTask" in actions(s)]
    assert actions(run_task) == ["ecs:RunTask"]
    assert run_task["Resource"] == "arn:aws:ecs:eu-west-1:123456789012:task-definition/voicefleet-aws-test-bot:*"
    assert run_task["Condition"] == {
        "ArnEquals": {"ecs:cluster": "arn:aws:ecs:eu-west-1:123456789012:cluster/voicefleet-aws-test"}}


def test_pass_role_only_the_bot_roles_to_ecs_tasks(aws: Run) -> None:
    (passing,) = [s for s in policy_statements(aws) if "iam:PassRole" in actions(s)]
    assert sorted(passing["Resource"]) == [
        "arn:aws:iam::123456789012:role/voicefleet-aws-test-bot-execution",
        "arn:aws:iam::123456789012:role/voicefleet-aws-test-bot-task",
    ]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}


def test_task_management_and_tagging_are_scoped_to_the_cluster(aws: Run) -> None:
    cluster = "arn:aws:ecs:eu-west-1:123456789012:cluster/voicefleet-aws-test"
    by_action = {a: s for s in policy_statements(aws) for a in actions(s) if a.startswith("ecs:")}
    for action in ("ecs:DescribeTasks", "ecs:StopTask", "ecs:ListTasks"):
        assert by_action[action]["Condition"] == {"ArnEquals": {"ecs:cluster": cluster}}, action
    tagging = [s for s in policy_statements(aws) if "ecs:TagResource" in actions(s)]
    assert {"StringEquals": {"ecs:CreateAction": "RunTask"}} in [s["Condition"] for s in tagging]
    assert by_action["ecs:StopTask"]["Resource"] == "arn:aws:ecs:eu-west-1:123456789012:task/voicefleet-aws-test/*"


def test_ecr_repositories_scan_on_push_and_expire_images(aws: Run) -> None:
    repositories = aws.of_type("aws:ecr/repository:Repository")
    assert len(repositories) == 2
    assert all(r.inputs["imageScanningConfiguration"] == {"scanOnPush": True} for r in repositories)
    policies = {r.inputs["repository"] for r in aws.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")}
    assert policies == {r.inputs["name"] for r in repositories}


def test_every_log_group_has_retention(stack: StackRunner) -> None:
    run = stack("aws", logRetentionDays="30")
    groups = run.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert len(groups) == 2 and all(g.inputs.get("retentionInDays") == 30 for g in groups)


def test_every_aws_resource_uses_the_default_tagged_provider(aws: Run) -> None:
    (provider,) = aws.of_type("pulumi:providers:aws")
    tags = json.loads(provider.inputs["defaultTags"])["tags"]
    assert tags == {"project": "voicefleet", "stack": "aws-test", "environment": "dev", "managed-by": "pulumi"}
    resources = [r for r in aws.registrations if r.type.startswith("aws:")]
    assert resources and all(r.provider.startswith(provider.urn + "::") for r in resources)


def test_bot_task_definition_is_a_stable_runtask_target(aws: Run) -> None:
    task = aws.one("aws:ecs/taskDefinition:TaskDefinition", "voicefleet-aws-test-bot")
    assert task.inputs["family"] == "voicefleet-aws-test-bot"
    assert task.inputs["skipDestroy"] is True
    assert (task.inputs["cpu"], task.inputs["memory"]) == ("512", "1024")
    bot = container(aws, "-bot")
    assert bot["name"] == contract.BOT_CONTAINER_NAME
    assert "linuxParameters" not in bot  # the image's tini is PID 1; no second init (review item 10)
    assert bot["logConfiguration"]["logDriver"] == "awslogs"


def test_containers_run_images_by_digest(aws: Run) -> None:
    for suffix in ("-bot", "-dispatcher"):
        image = container(aws, suffix)["image"]
        repository, digest = image.split("@")
        assert repository.endswith(f"voicefleet-aws-test{suffix}") and digest.startswith("sha256:")


def test_dispatcher_environment_is_what_the_ecs_provider_reads(aws: Run) -> None:
    dispatcher = container(aws, "-dispatcher")
    keys = [e["name"] for e in dispatcher["environment"]] + [s["name"] for s in dispatcher["secrets"]]
    assert sorted(keys) == sorted(contract.ECS_ENV + contract.DISPATCHER_SECRETS)
    env = {e["name"]: e["value"] for e in dispatcher["environment"]}
    assert env["MACHINES"] == "ecs" and env["ECS_TASK_DEFINITION"] == "voicefleet-aws-test-bot"
    assert env["ECS_SUBNETS"].count(",") == 1 and env["ECS_ASSIGN_PUBLIC_IP"] == "ENABLED"
    assert all(isinstance(v, str) and v for v in env.values())  # no None or empty values


def test_the_dispatcher_prices_its_idle_bots_by_the_bot_tasks_own_size(aws: Run) -> None:
    task = aws.one("aws:ecs/taskDefinition:TaskDefinition", "voicefleet-aws-test-bot")
    env = {e["name"]: e["value"] for e in container(aws, "-dispatcher")["environment"]}
    assert float(env["ECS_TASK_VCPU"]) == int(task.inputs["cpu"]) / 1024
    assert float(env["ECS_TASK_MEMORY_GB"]) == int(task.inputs["memory"]) / 1024


def test_dispatcher_secrets_are_references_not_values(aws: Run) -> None:
    dispatcher = container(aws, "-dispatcher")
    names = {s["name"]: s["valueFrom"].split(":secret:")[1].split(":")[0] for s in dispatcher["secrets"]}
    assert sorted(names) == ["DAILY_API_KEY", "DISPATCHER_ADMIN_KEYS", "DISPATCHER_API_KEYS"]
    # <path>/<name>-<the provider's generated 26 characters>-<AWS's six>: never a fixed name (F8).
    assert re.fullmatch(r"/voicefleet/aws-test/daily-api-key-[0-9a-f]{26}-AbCdEf", names["DAILY_API_KEY"])
    assert re.fullmatch(r"/voicefleet/aws-test/dispatcher-api-keys-[0-9a-f]{26}-AbCdEf", names["DISPATCHER_API_KEYS"])


def test_secrets_are_pinned_to_the_version_the_stack_wrote_so_a_rotation_is_a_diff(aws: Run) -> None:
    """Review item 5: ECS reads secrets at container start; a pinned version makes a rotation a
    new task definition revision and a dispatcher rollout (valueFrom = ARN:json-key:stage:version)."""
    versions = {r.name: r for r in aws.of_type("aws:secretsmanager/secretVersion:SecretVersion")}
    for suffix in ("-bot", "-dispatcher"):
        for secret in container(aws, suffix)["secrets"]:
            arn, json_key, stage, version = secret["valueFrom"].rsplit(":", 3)
            assert (json_key, stage) == ("", "") and version.startswith("v-") and ":secret:" in arn
    assert len(versions) == len(contract.DISPATCHER_SECRETS)


def test_bot_gets_provider_keys_by_reference_when_configured(stack: StackRunner) -> None:
    run = stack("aws", deepgramApiKey="SENTINEL-dg", cartesiaApiKey="SENTINEL-ca", openaiApiKey="SENTINEL-oa")
    assert [s["name"] for s in container(run, "-bot")["secrets"]] == [
        "CARTESIA_API_KEY", "DEEPGRAM_API_KEY", "OPENAI_API_KEY"]


def test_alb_closes_idle_connections_before_the_dispatcher_does(aws: Run) -> None:
    (balancer,) = aws.of_type("aws:lb/loadBalancer:LoadBalancer")
    keep_alive = {e["name"]: e["value"] for e in container(aws, "-dispatcher")["environment"]}["KEEP_ALIVE_SECONDS"]
    assert balancer.inputs["idleTimeout"] == 60 and int(keep_alive) == 65


def test_dispatcher_service_health_checks_and_rolls_back(aws: Run) -> None:
    (targets,) = aws.of_type("aws:lb/targetGroup:TargetGroup")
    assert targets.inputs["healthCheck"]["path"] == "/healthz"
    (service,) = aws.of_type("aws:ecs/service:Service")
    assert service.inputs["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}


def test_https_listener_and_redirect_when_a_certificate_is_configured(stack: StackRunner,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warnings.append(str(message)))
    run = stack("aws", allowPlainHttp="false", certificateArn="arn:aws:acm:eu-west-1:123456789012:certificate/x")
    # No dispatcherDomain: dispatcherUrl is the ALB's name, which the certificate does not cover.
    assert [w for w in warnings if "certificateArn without dispatcherDomain" in w]
    listeners = {r.inputs["protocol"]: r for r in run.of_type("aws:lb/listener:Listener")}
    assert listeners["HTTPS"].inputs["certificateArn"].endswith("certificate/x")
    assert listeners["HTTP"].inputs["defaultActions"][0]["type"] == "redirect"


def test_prod_protects_stateful_resources(stack: StackRunner) -> None:
    run = stack("aws", protect="true")
    for typ in ("aws:ecr/repository:Repository", "aws:secretsmanager/secret:Secret",
                "aws:cloudwatch/logGroup:LogGroup"):
        assert all(r.protect for r in run.of_type(typ)), typ
    assert all(r.inputs["forceDelete"] is False for r in run.of_type("aws:ecr/repository:Repository"))


def test_dev_protects_nothing(aws: Run) -> None:
    assert [r.name for r in aws.registrations if r.protect] == []


def test_bots_get_public_subnets_in_at_least_two_zones(aws: Run) -> None:
    subnets = aws.of_type("aws:ec2/subnet:Subnet")
    assert len({s.inputs["availabilityZone"] for s in subnets}) >= 2
    (route,) = aws.of_type("aws:ec2/route:Route")
    assert route.inputs["destinationCidrBlock"] == "0.0.0.0/0" and "gatewayId" in route.inputs
    assert aws.of_type("aws:ec2/natGateway:NatGateway") == []
    assert unwrap(container(aws, "-bot")["essential"]) is True


def test_dispatcher_url_is_the_name_the_certificate_covers(stack: StackRunner) -> None:
    """With a certificate the URL clients, carriers and the first-deploy `/healthz` check are given
    is dispatcherDomain: the ALB's own *.elb.amazonaws.com name fails their TLS name check."""
    run = stack("aws", certificateArn="arn:aws:acm:eu-west-1:123456789012:certificate/test",
                allowPlainHttp="false", dispatcherDomain="voice.example.com")
    outputs = unwrap(component_outputs(run, "aws"))
    assert outputs["dispatcherUrl"] == "https://voice.example.com"
    assert outputs["albDnsName"].endswith(".elb.amazonaws.com")  # what the domain's DNS record points at


def test_a_plain_http_dispatcher_url_is_the_balancer_name(aws: Run) -> None:
    outputs = unwrap(component_outputs(aws, "aws"))
    assert outputs["dispatcherUrl"] == f"http://{outputs['albDnsName']}"
