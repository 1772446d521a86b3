"""What `pulumi destroy` meets that Pulumi did not create: the machines the dispatcher launched.

- terraform-provider-aws `internal/service/ecs/cluster.go` resourceClusterDelete retries
  ClusterContainsTasksException for 10 minutes, while a session runs up to maxSessionSeconds; the
  tasks' ENIs also hold the subnets and the bot security group.
- GCE refuses to delete a subnetwork a VM still uses (resourceInUseByAnotherResource), and the
  engine deletes dependents first and in parallel: a bot VM's self-delete grant may go before its
  bot ends, and that VM then powers off and stays.
So a stack whose dispatcher launches machines must let `python -m stacks.drain` find them: the
stack outputs `machinesEnvironment`, which the dispatcher's own provider must accept, and
`drained`, which says no dispatcher runs any more (the `drain` setting). The tests drain real
fakes (tests/infra/tools/test_drain.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stacks.tools.mocks import Registration, unwrap

LAUNCH_TARGETS = {"aws:ecs/cluster:Cluster": "ecs", "gcp:compute/instanceTemplate:InstanceTemplate": "gce"}


def _provider_refusal(machines: str, env: Mapping[str, Any]) -> str | None:
    from dispatcher.machines.ecs.provider import EcsSettings
    from dispatcher.machines.gce.provider import GceSettings
    from dispatcher.settings import SettingsError

    try:
        (EcsSettings if machines == "ecs" else GceSettings).from_env({k: str(v) for k, v in env.items()})
    except SettingsError as exc:
        return str(exc)
    return None


def violations(registrations: Iterable[Registration], outputs: Mapping[str, Any]) -> list[str]:
    kinds = {LAUNCH_TARGETS[r.type] for r in registrations if r.type in LAUNCH_TARGETS}
    found = []
    for machines in sorted(kinds):
        env = unwrap(outputs.get("machinesEnvironment"))
        if not isinstance(env, dict) or env.get("MACHINES") != machines:
            found.append(f"stack outputs: no machinesEnvironment for MACHINES={machines}: a destroy cannot drain "
                         "the machines the dispatcher launched (they hold the cluster, subnets and network)")
            continue
        refusal = _provider_refusal(machines, env)
        if refusal:
            found.append(f"stack outputs: machinesEnvironment is refused by the {machines} provider: {refusal}")
        if "drained" not in outputs:
            found.append("stack outputs: no `drained`: the drain cannot tell whether a dispatcher still launches bots")
    return found
