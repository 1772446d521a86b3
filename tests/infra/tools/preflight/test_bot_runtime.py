"""The plan's notes on switching `botRuntime` on a running GCP stack (stacks/tools/preflight/bot_runtime.py):
drain first, and after leaving Cloud Run, the bots' network to delete by hand."""

from __future__ import annotations

from dataclasses import replace

from stacks.tools.preflight import bot_runtime
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner


def test_a_cloud_run_stack_says_a_switch_to_gce_leaves_the_bots_network_and_how_to_delete_it(
    stack: StackRunner,
) -> None:
    run = stack("gcp", secrets={**SECRETS, **CHANNEL_SECRETS}, botRuntime="cloudrun", **CHANNEL["gcp"])
    (note,) = bot_runtime.notes(run.registrations, "gcp-test", "vf-test", "europe-west4")
    assert "python -m stacks.drain gcp-test" in note and "pulumi config set drain true -s gcp-test" in note
    assert "gcloud compute networks delete voicefleet-gcp-test-bots --project vf-test" in note
    assert "gcloud compute networks subnets delete voicefleet-gcp-test-bots --region europe-west4" in note


def test_a_compute_engine_stack_says_to_drain_before_a_switch_and_aws_says_nothing(stack: StackRunner) -> None:
    (note,) = bot_runtime.notes(stack("gcp").registrations, "gcp-test", "vf-test", "europe-west4")
    assert "replaces the bots' network" in note and "python -m stacks.drain gcp-test" in note
    assert bot_runtime.notes(stack("aws").registrations, "aws-test", "", "") == []


def test_a_protected_bot_job_is_refused_because_a_switch_to_gce_could_not_delete_it(stack: StackRunner) -> None:
    run = stack("gcp", secrets={**SECRETS, **CHANNEL_SECRETS}, botRuntime="cloudrun", protect="true", **CHANNEL["gcp"])
    assert bot_runtime.violations(run.registrations) == []  # `protect` leaves the job unprotected
    protected = [replace(reg, inputs={**reg.inputs, "deletionProtection": True}) if reg.type == bot_runtime.JOB
                 else reg for reg in run.registrations]
    (violation,) = bot_runtime.violations(protected)
    assert "switching botRuntime to gce fails at its delete" in violation
