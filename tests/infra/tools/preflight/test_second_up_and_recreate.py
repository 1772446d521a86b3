"""A second `up` changes nothing it should not, and a destroyed stack can be created again.

Each preflight rule (stacks/tools/preflight/lifecycle.py, ecr_lifecycle.py, ordering.py, iam_scope.py) is
shown to flag the shape the stacks had (the registration with the fix taken out) and to pass the
program as it is; the four example stacks' plans run every rule (tests/infra/tools/test_plan.py).
"""

from __future__ import annotations

import dataclasses
import json

from stacks.aws.registry import lifecycle_policy
from stacks.tools.mocks import Registration, Run, unwrap
from stacks.tools.preflight import ecr_lifecycle, iam_scope, lifecycle, ordering
from tests.infra.conftest import CHANNEL_DOMAIN, StackRunner
from tests.infra.test_turn_server import run_with_turn

# The rules as the stacks had them: untagged images expired after a day, then "keep N".
OLD_LIFECYCLE = json.dumps({"rules": [
    {"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                                      "countUnit": "days", "countNumber": 1}, "action": {"type": "expire"}},
    {"rulePriority": 2, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10},
     "action": {"type": "expire"}}]})
# One count over every image (F10's fix): revision indexes of docs-only deploys count against the builds.
COUNT_ONLY = json.dumps({"rules": [
    {"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 40},
     "action": {"type": "expire"}}]})


def with_inputs(reg: Registration, **changes: object) -> Registration:
    return dataclasses.replace(reg, inputs={**reg.inputs, **changes})


def relay(stack: StackRunner, cloud: str, generation: int = 1, **overrides: str) -> Run:
    """A stack with every piece: channel, managed TURN relay (test_turn_server.py's configuration)."""
    return run_with_turn(stack, cloud, generation=generation, **overrides)


def test_a_newer_debian_image_does_not_replace_the_relay(stack: StackRunner) -> None:
    """F5: `ami` forces a replacement and the lookup takes the most recent image."""
    run = relay(stack, "aws")
    assert any(i.token == "aws:ec2/getAmi:getAmi" and i.args.get("mostRecent") for i in run.invokes)
    instance = run.one("aws:ec2/instance:Instance")
    assert lifecycle.replacement_violations(run.registrations, run.invokes) == []
    floating = dataclasses.replace(instance, ignore_changes=())
    assert lifecycle.replacement_violations([floating], run.invokes)


def test_a_changed_gcp_relay_script_re_creates_the_relay(stack: StackRunner) -> None:
    """F6: metadata['startup-script'] updates in place and runs only at boot."""
    run = relay(stack, "gcp")
    instance = run.one("gcp:compute/instance:Instance")
    assert "startup-script" not in instance.inputs["metadata"] and instance.inputs["metadataStartupScript"]
    assert instance.delete_before_replace  # the static address moves to the new VM
    assert lifecycle.in_place_violations(run.registrations) == []
    script = unwrap(instance.inputs)["metadataStartupScript"]
    in_place = with_inputs(instance, metadata={**instance.inputs["metadata"], "startup-script": script})
    assert lifecycle.in_place_violations([in_place])


def test_secrets_and_custom_roles_get_new_names_when_the_stack_is_re_created(stack: StackRunner) -> None:
    """F8 (secrets in their recovery window), F9 (custom role ids reserved 37 days), F14 (no name
    ending in '-' plus six characters)."""
    for cloud in ("aws", "gcp"):
        first, second = relay(stack, cloud), relay(stack, cloud, generation=2)
        assert lifecycle.recreate_violations(first.registrations, second.registrations) == []
        assert lifecycle.name_violations(first.registrations) == []
    secret = relay(stack, "aws").registrations
    fixed = [with_inputs(r, name="/voicefleet/aws-test/turn-shared-secret", recoveryWindowInDays=30)
             for r in secret if r.type == "aws:secretsmanager/secret:Secret" and "turn" in r.name]
    assert len(fixed) == 1
    assert lifecycle.recreate_violations(fixed, fixed) and lifecycle.name_violations(fixed)
    roles = [r for r in relay(stack, "gcp").registrations if r.type == "gcp:projects/iAMCustomRole:IAMCustomRole"]
    assert len(roles) == 2
    fixed_roles = [with_inputs(r, roleId="voicefleet_gcp_test_bot_launcher") for r in roles]
    assert len(lifecycle.recreate_violations(fixed_roles, fixed_roles)) == 2


def test_ecr_keeps_the_builds_a_rollback_pulls(aws: Run) -> None:
    """F10: an untagged-after-a-day rule ahead of the count rule expired every superseded build."""
    policies = aws.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert policies and ecr_lifecycle.violations(policies, keep=20) == []
    old = [with_inputs(policies[0], policy=OLD_LIFECYCLE)]
    assert ecr_lifecycle.violations(old, keep=10)
    # A dispatcher repository's two-platform builds: an untagged index, two manifests and a cache each.
    images = ecr_lifecycle.history(15, platforms=2)
    gone = ecr_lifecycle.expired(json.loads(lifecycle_policy(10)), images, today=16)
    newest = set().union(*(ecr_lifecycle.pulled(images, f"build-{d}") for d in range(5, 15)))
    assert newest.isdisjoint(gone) and "build-0" in gone  # bounded, newest kept


def test_ecr_revision_tags_do_not_push_the_builds_out(aws: Run) -> None:
    """N13: every deploy pushes a `rev-<revision>` index, also one that rebuilt nothing; counted with
    the builds, three deploys a day left a third of the promised builds."""
    (policy, *_) = aws.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert ecr_lifecycle.violations([with_inputs(policy, policy=COUNT_ONLY)], keep=20)
    gone = ecr_lifecycle.expired(json.loads(lifecycle_policy(10)), ecr_lifecycle.history(15), today=16)
    assert {f"build-{d}" for d in range(5, 15)}.isdisjoint(gone) and "cache-14" not in gone
    newest = {f"index-{d}-{n}" for d in range(12, 15) for n in range(3)} | {"index-11-2"}
    assert newest.isdisjoint(gone) and "index-11-1" in gone  # the newest 10 revisions, no more
    (index, *_) = aws.of_type("docker-build:index:Index")
    assert ":rev-" in unwrap(index.inputs)["tag"]  # what the rule's prefix selects


def test_machines_wait_for_the_grants_they_use_at_boot(stack: StackRunner) -> None:
    """F12 (the GCP dispatcher launches VMs at once) and F13 (the AWS relay reads its secrets once)."""
    for cloud, typ in (("aws", "aws:ec2/instance:Instance"), ("gcp", "gcp:cloudrunv2/service:Service")):
        run = relay(stack, cloud)
        assert ordering.violations(run.registrations) == []
        waiting = run.one(typ)
        grants = {r.urn for r in run.registrations if r.type.endswith(("rolePolicy:RolePolicy", "IAMMember",
                                                                       "IamMember"))}
        kept = tuple(u for u in waiting.dependencies if u not in grants)
        assert kept != waiting.dependencies, cloud
        impatient = [dataclasses.replace(r, dependencies=kept) if r is waiting else r for r in run.registrations]
        assert ordering.violations(impatient), cloud


def test_the_iam_conditions_reach_no_other_stacks_vms(gcp: Run) -> None:
    """F16: startsWith(".../vf-gcp-prod-") also matched the VMs of a stack named gcp-prod-eu."""
    assert iam_scope.violations("gcp-test", gcp.registrations) == []
    bindings = [r for r in gcp.registrations if "condition" in r.inputs]
    assert len(bindings) == 2
    loose = [with_inputs(r, condition={**r.inputs["condition"], "expression": r.inputs["condition"]["expression"]
                                       .replace("vf-gcp-test--", "vf-gcp-test-")}) for r in bindings]
    assert len(iam_scope.violations("gcp-test", loose)) == 2


def test_with_its_zone_the_first_aws_up_writes_the_dispatchers_record_before_the_dispatcher_starts(
        stack: StackRunner) -> None:
    """F11: bots dial wss://<dispatcherDomain>; until it points at the ALB (created by this same `up`),
    every reserve bot would fail its channel. With dispatcherZoneId the stack writes the alias record
    and the service, which starts the reserve, waits for it. Without one the documented first deploy
    runs with `drain: true` until the operator's record exists (docs/pulumi.md)."""
    run = relay(stack, "aws", dispatcherZoneId="Z0123456789ABCDEF")
    record = run.one("aws:route53/record:Record")
    assert record.inputs["name"] == CHANNEL_DOMAIN and record.inputs["zoneId"] == "Z0123456789ABCDEF"
    (alias,) = record.inputs["aliases"]
    assert alias["name"] == run.one("aws:lb/loadBalancer:LoadBalancer").inputs["name"] + "-1234567890.eu-west-1.elb" \
        ".amazonaws.com"
    service = run.one("aws:ecs/service:Service")
    assert record.urn in service.dependencies
    without = relay(stack, "aws")
    assert not without.of_type("aws:route53/record:Record")
    assert without.one("aws:ecs/service:Service").inputs["desiredCount"] == 1
    drained = relay(stack, "aws", drain="true")  # the first `up` without a zone: nothing dials yet
    assert drained.one("aws:ecs/service:Service").inputs["desiredCount"] == 0
