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
"""

from __future__ import annotations

from collections.abc import Iterable

from stacks.tools.mocks import Registration, unwrap
from stacks.tools.preflight.destroy import NETWORK, SUBNETWORK

JOB, TEMPLATE = "gcp:cloudrunv2/job:Job", "gcp:compute/instanceTemplate:InstanceTemplate"

DRAIN = ("`pulumi config set drain true -s {stack} && pulumi up -s {stack}`, then "
         "`uv run --project infra python -m stacks.drain {stack}`")


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
            f"outside the stack's state: drain first, {drain}; about two hours after that up: " + "; ".join(deletes)]
