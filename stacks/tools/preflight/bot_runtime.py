"""Notes for the operator of a GCP stack about switching `botRuntime` while it runs.

The plan is offline: it cannot see what the stack runs now, so it says what a switch away from
the runtime this configuration builds would meet.
- gce → cloudrun: the bots' network gets a fixed name (`<prefix>-bots`, stacks/gcp/stack.py), and
  a network's name is ForceNew (pulumi-gcp `compute/network.py`): the network is replaced, and GCE
  refuses to delete one that a running bot VM still uses (resourceInUseByAnotherResource).
- cloudrun → gce: the Cloud Run bots' network and subnetwork are `retain_on_delete` (Cloud Run
  holds their addresses 1-2 h, preflight/destroy.py), so the switch leaves them outside the
  stack's state, to be deleted by hand.
Either way: drain first (`python -m stacks.drain`), so no bot holds the network.

`violations` refuses a bot job that would block the cloudrun → gce switch: the provider's Delete
reads `deletion_protection` from the state and refuses while it is true (terraform-provider-google
`resourceCloudRunV2JobDelete`, cloudrunv2/resource_cloud_run_v2_job.go: "cannot destroy job without
setting deletion_protection=false and running `terraform apply`"), and a switch removes the job
from the program, so nothing sets it false first.
"""

from __future__ import annotations

from collections.abc import Iterable

from stacks.tools.mocks import Registration, unwrap
from stacks.tools.preflight.destroy import NETWORK, SUBNETWORK

JOB, TEMPLATE = "gcp:cloudrunv2/job:Job", "gcp:compute/instanceTemplate:InstanceTemplate"

DRAIN = ("`pulumi config set drain true -s {stack} && pulumi up -s {stack}`, then "
         "`uv run --project infra python -m stacks.drain {stack}`")


def violations(registrations: Iterable[Registration]) -> list[str]:
    """A protected bot job: switching botRuntime to gce would fail at its delete (module docstring)."""
    return [f"{reg.name}: the bot job sets deletionProtection, so switching botRuntime to gce fails at its delete "
            "(the provider refuses to delete a protected job, and the switch leaves nothing to unprotect it first): "
            "leave the job unprotected; it holds no state (its account and secrets are resources of their own)"
            for reg in registrations if reg.type == JOB and unwrap(reg.inputs).get("deletionProtection")]


def notes(registrations: Iterable[Registration], stack: str, project: str, region: str) -> list[str]:
    registered = list(registrations)
    types = {reg.type for reg in registered}
    drain = DRAIN.format(stack=stack)
    if TEMPLATE in types:
        return [f"botRuntime is gce: switching this running stack to cloudrun replaces the bots' network, which "
                f"running bot VMs hold (the replacement fails): drain first, {drain}, then switch"]
    if JOB not in types:
        return []
    kept = [(reg.type, str(unwrap(reg.inputs).get("name"))) for reg in registered
            if reg.type in (NETWORK, SUBNETWORK) and reg.retain_on_delete]
    deletes = ([f"gcloud compute networks subnets delete {n} --region {region} --project {project}"
                for t, n in kept if t == SUBNETWORK]
               + [f"gcloud compute networks delete {n} --project {project}" for t, n in kept if t == NETWORK])
    return [f"botRuntime is cloudrun: switching this running stack to gce leaves the Cloud Run bots' network "
            f"outside the stack's state: drain first, {drain}; a job deployed while its deletion protection "
            f"followed `protect` needs one `up` on cloudrun first, so the state holds it unprotected; "
            f"about two hours after the switch: " + "; ".join(deletes)]
