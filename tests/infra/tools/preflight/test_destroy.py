"""What `pulumi destroy` meets after the provider's own waits (stacks/tools/preflight/destroy.py):
each rule passes the program as it is and flags the shape the stacks had."""

from __future__ import annotations

import dataclasses

from stacks.tools.mocks import Run, unwrap
from stacks.tools.preflight import destroy
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner
from tests.infra.test_turn_server import run_with_turn
from tests.infra.tools.test_drain import component_outputs


def gcp_with_store(stack: StackRunner) -> Run:
    return stack("gcp", secrets={**SECRETS, **CHANNEL_SECRETS},
                 **{**CHANNEL["gcp"], "dispatcherMinInstances": "2", "dispatcherMaxInstances": "3"})


def test_cloud_runs_egress_network_outlives_the_destroy_and_the_bots_network_does_not(stack: StackRunner) -> None:
    """N4: Direct VPC egress holds its subnetwork 1-2 h after the service is deleted."""
    run = gcp_with_store(stack)
    assert destroy.direct_vpc_violations(run.registrations) == []
    service = run.one("gcp:cloudrunv2/service:Service")
    (interface,) = unwrap(service.inputs)["template"]["vpcAccess"]["networkInterfaces"]
    subnetworks = {r.name: r for r in run.of_type(destroy.SUBNETWORK)}
    egress = next(r for name, r in subnetworks.items() if interface["subnetwork"].endswith(f"/{name}"))
    assert egress.retain_on_delete
    bots = [r for r in subnetworks.values() if r is not egress]
    assert bots and not any(r.retain_on_delete for r in bots)  # the bots' network is deleted as before
    (policy,) = run.of_type("gcp:networkconnectivity/serviceConnectionPolicy:ServiceConnectionPolicy")
    assert unwrap(policy.inputs)["pscConfig"]["subnetworks"] == [interface["subnetwork"]]
    outputs = component_outputs(run, "gcp")
    assert outputs["retainedNetwork"] and outputs["retainedSubnetwork"]  # what to delete later
    # As it was: Cloud Run in the bots' own subnetwork, which the destroy deletes minutes later.
    (bot,) = bots
    shared = dataclasses.replace(service, inputs={**service.inputs, "template": {
        **service.inputs["template"], "vpcAccess": {"networkInterfaces": [
            {"network": unwrap(bot.inputs)["network"], "subnetwork": f"projects/p/{bot.name}"}]}}},
        dependencies=(*service.dependencies, bot.urn, *bot.dependencies))
    found = destroy.direct_vpc_violations([shared, *(r for r in run.registrations if r is not service)])
    assert len(found) == 2 and all("1-2 h" in line for line in found)  # the subnetwork and its network


def test_a_gcp_stack_without_the_store_has_no_egress_network(stack: StackRunner) -> None:
    run = stack("gcp")
    assert "vpcAccess" not in unwrap(run.one("gcp:cloudrunv2/service:Service").inputs)["template"]
    assert not any(r.retain_on_delete for r in run.registrations if r.type in (destroy.NETWORK, destroy.SUBNETWORK))


def test_the_networks_a_destroy_leaves_have_fixed_names_and_the_plan_says_how_to_delete_them(
    stack: StackRunner,
) -> None:
    """Review 3: generated names left one more network per destroy and `up` (15 VPC networks a project)."""
    run = gcp_with_store(stack)
    kept = [r for r in run.registrations if r.type in (destroy.NETWORK, destroy.SUBNETWORK) and r.retain_on_delete]
    assert {unwrap(r.inputs).get("name") for r in kept} == {"voicefleet-gcp-test-egress"}
    assert destroy.retained_name_violations(run.registrations) == []
    generated = [dataclasses.replace(r, inputs={k: v for k, v in r.inputs.items() if k != "name"}) for r in kept]
    assert len(destroy.retained_name_violations(generated)) == 2
    (note,) = destroy.leftover_notes(run.registrations, "vf-test", "europe-west4")
    assert "gcloud compute networks list --project vf-test --filter='name=(voicefleet-gcp-test-egress)'" in note
    assert "gcloud compute networks subnets delete voicefleet-gcp-test-egress --region europe-west4" in note
    (aws,) = destroy.leftover_notes(stack("aws").registrations, "", "")
    assert "gcloud" not in aws


def test_an_aws_destroy_note_names_the_command_for_each_bot_family(stack: StackRunner) -> None:
    """A destroy leaves the bot task definitions' revisions ACTIVE (skip_destroy); the plan says how
    to deregister them, with the commands the stack exports (tests/infra/aws/test_task_definitions.py runs them)."""
    run = run_with_turn(stack, "aws")
    (note,) = destroy.leftover_notes(run.registrations, "", "")
    for command in component_outputs(run, "aws")["deregisterTaskDefinitions"]:
        assert command in note
    assert "voicefleet-aws-test-bot, voicefleet-aws-test-bot-webrtc ACTIVE" in note
    assert destroy.leftover_notes(stack("gcp").registrations, "vf-test", "europe-west4") == []


def test_a_cloud_run_bot_jobs_network_outlives_the_destroy_under_a_fixed_name(stack: StackRunner) -> None:
    """The bot job's tasks egress through the bots' subnetwork (Direct VPC), which Cloud Run holds too."""
    run = stack("gcp", secrets={**SECRETS, **CHANNEL_SECRETS}, botRuntime="cloudrun", **CHANNEL["gcp"])
    assert destroy.direct_vpc_violations(run.registrations) == []
    assert destroy.retained_name_violations(run.registrations) == []
    (note,) = destroy.leftover_notes(run.registrations, "vf-test", "europe-west4")
    assert "gcloud compute networks delete voicefleet-gcp-test-bots --project vf-test" in note
    deleted = [dataclasses.replace(r, retain_on_delete=False) if r.type in (destroy.NETWORK, destroy.SUBNETWORK)
               else r for r in run.registrations]
    found = destroy.direct_vpc_violations(deleted)
    job = run.one("gcp:cloudrunv2/job:Job").name
    assert len(found) == 2 and all(f": {job}'s Direct VPC egress" in line for line in found), found
