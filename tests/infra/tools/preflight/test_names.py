"""AWS/GCP name, label and size rules (stacks/tools/preflight/names.py, sizes.py) on what the program registers.

Each rule cites its API reference in the module. Runs for every example stack and for the longest
stack name settings allow; the review's item 2 (auto-named ALB and target group) is shown failing
on a copy of the registrations with those names taken out again.
"""

from __future__ import annotations

import dataclasses

import pytest

from stacks.config.settings import MAX_STACK_NAME, SettingsError
from stacks.tools.mocks import Registration, Run, run_program
from stacks.tools.paths import stack_names
from stacks.tools.plan import stack_config
from stacks.tools.preflight import names, sizes
from tests.infra.conftest import StackRunner

STACKS = stack_names()
LB, TG = "aws:lb/loadBalancer:LoadBalancer", "aws:lb/targetGroup:TargetGroup"


def example(stack: str) -> Run:
    config, secret_keys = stack_config(stack)
    return run_program(config, secret_keys, stack=stack)


@pytest.mark.parametrize("stack", STACKS)
def test_every_example_stack_keeps_every_name_label_and_size_rule(stack: str) -> None:
    run = example(stack)
    assert names.violations(run.registrations) == []
    assert sizes.violations(run.registrations) == []


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_the_longest_allowed_stack_name_still_fits_every_limit(stack: StackRunner, cloud: str) -> None:
    longest = f"{cloud}-" + "x" * (MAX_STACK_NAME - len(cloud) - 2) + "9"
    assert len(longest) == MAX_STACK_NAME
    run = stack(cloud, name=longest)
    assert names.violations(run.registrations) == []


def test_a_longer_stack_name_is_refused_with_its_reason(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="at most 20"):
        stack("aws", name="aws-" + "x" * MAX_STACK_NAME)


def without(reg: Registration, *fields: str) -> Registration:
    return dataclasses.replace(reg, inputs={k: v for k, v in reg.inputs.items() if k not in fields})


def test_review_item_2_auto_named_balancer_and_target_group_exceed_32_characters() -> None:
    """A deliberately broken copy: the ALB and target group without the names the fix gave them."""
    run = example("aws-dev")
    broken = [without(r, "name", "namePrefix") if r.type in (LB, TG) else r for r in run.registrations]
    found = names.violations(broken)
    assert len(found) == 2
    assert all("'voicefleet-aws-dev-dispatcher-abcdefg' is 37 characters, limit 1..32" in v for v in found)


def reg(typ: str, logical: str, **inputs: object) -> Registration:
    return Registration(urn=f"urn:{logical}", type=typ, name=logical, inputs=dict(inputs), custom=True,
                        provider="", parent="", protect=False)


def test_name_rules_catch_each_kind_of_mistake() -> None:
    assert names.violations([reg(TG, "t", namePrefix="voicef")]) == []
    assert names.violations([reg(TG, "t", namePrefix="voicefl")])  # prefix > 6
    assert names.violations([reg(LB, "x", name="internal-lb")])  # reserved prefix
    assert names.violations([reg(LB, "x", name="lb-")])  # ends with a hyphen
    assert names.violations([reg("aws:iam/role:Role", "r" * 57)])  # 57 + 8 > 64
    assert not names.violations([reg("aws:iam/role:Role", "r" * 56)])
    assert names.violations([reg("aws:ecr/repository:Repository", "x", name="Voicefleet")])  # uppercase
    assert names.violations([reg("gcp:serviceaccount/account:Account", "a", accountId="vf-bot")]) == []
    assert names.violations([reg("gcp:serviceaccount/account:Account", "a", accountId="vf-b")])  # < 6
    assert names.violations([reg("gcp:compute/instanceTemplate:InstanceTemplate", "t", namePrefix="x" * 38)])
    assert names.violations([reg("gcp:cloudrunv2/service:Service", "s", name="s" * 50)])
    assert names.violations([reg("gcp:compute/network:Network", "n", labels={"Team": "voice"})])
    assert names.violations([reg("pulumi:providers:gcp", "p", defaultLabels='{"team": "Voice"}')])


def task(cpu: int, memory: int, arch: str = "X86_64") -> Registration:
    return reg("aws:ecs/taskDefinition:TaskDefinition", "td", family="f", cpu=str(cpu), memory=str(memory),
               requiresCompatibilities=["FARGATE"], runtimePlatform={"cpuArchitecture": arch})


def test_fargate_accepts_only_its_documented_cpu_memory_pairs() -> None:
    for cpu, memory in ((256, 512), (256, 2048), (512, 4096), (4096, 30720), (8192, 20480), (16384, 122880)):
        assert sizes.violations([task(cpu, memory)]) == [], (cpu, memory)
    for cpu, memory in ((256, 1536), (256, 4096), (512, 512), (4096, 31744), (8192, 17408), (300, 1024)):
        assert sizes.violations([task(cpu, memory)]), (cpu, memory)


def test_task_architecture_must_be_one_the_images_are_built_for() -> None:
    image = reg("docker-build:index:Image", "img", platforms=["linux/arm64"])
    assert sizes.violations([image, task(512, 1024, "X86_64")])
    assert sizes.violations([image, task(512, 1024, "ARM64")]) == []


def test_cloud_run_memory_must_fit_its_cpu() -> None:
    def service(memory: str) -> Registration:
        return reg("gcp:cloudrunv2/service:Service", "s", name="s",
                   template={"containers": [{"resources": {"limits": {"cpu": "1", "memory": memory}}}]})
    assert sizes.violations([service("4Gi")]) == []
    assert sizes.violations([service("8Gi")])
