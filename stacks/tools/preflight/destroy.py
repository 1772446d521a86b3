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

- Cloud Run's Direct VPC egress keeps the addresses it reserved in its subnetwork for 1-2 hours
  after the service is deleted: "After you delete or move your Cloud Run resources, wait 1–2 hours
  for Cloud Run to release the IPs before you delete the subnet"
  (https://cloud.google.com/run/docs/configuring/vpc-direct-vpc). The engine deletes the
  subnetwork minutes after the service, inside that hold, and its network after it: both fail. So
  the subnetwork a Cloud Run service egresses through, and its network, must be left by a destroy
  (`retain_on_delete`) and deleted later, or the destroy cannot succeed the first time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stacks.aws.task_definitions import deregister_command
from stacks.tools.mocks import Registration, unwrap

# Cloud Run holds a deleted service's Direct VPC egress addresses this long (seconds, the page above).
DIRECT_VPC_ADDRESS_HOLD = (3600, 7200)
SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"
NETWORK = "gcp:compute/network:Network"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
LAUNCH_TARGETS = {"aws:ecs/cluster:Cluster": "ecs", "gcp:compute/instanceTemplate:InstanceTemplate": "gce",
                  "gcp:cloudrunv2/job:Job": "cloudrun"}


def _provider_refusal(machines: str, env: Mapping[str, Any]) -> str | None:
    from dispatcher.machines.cloudrun.provider import CloudRunSettings
    from dispatcher.machines.ecs.provider import EcsSettings
    from dispatcher.machines.gce.provider import GceSettings
    from dispatcher.settings import SettingsError

    read = {"ecs": EcsSettings.from_env, "gce": GceSettings.from_env, "cloudrun": CloudRunSettings.from_env}[machines]
    try:
        read({k: str(v) for k, v in env.items()})
    except SettingsError as exc:
        return str(exc)
    return None


def violations(registrations: Iterable[Registration], outputs: Mapping[str, Any]) -> list[str]:
    registrations = list(registrations)
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
    if "cloudrun" in kinds:
        found += _unswept_jobs(registrations, outputs)
    return found


def _unswept_jobs(registrations: Iterable[Registration], outputs: Mapping[str, Any]) -> list[str]:
    """Cloud Run: the drain lists executions job by job, so every job the stack keeps (a session may
    still run in a retiring release's) must be named in the output it sweeps (BOT_JOBS_OUTPUT)."""
    from stacks.shared.contract import BOT_JOBS_OUTPUT

    named = {str(path).rsplit("/", 1)[-1] for path in unwrap(outputs.get(BOT_JOBS_OUTPUT)) or []}
    jobs = sorted(str(unwrap(r.inputs).get("name")) for r in registrations if r.type == "gcp:cloudrunv2/job:Job")
    return [f"stack outputs: the Cloud Run job {job} is not in {BOT_JOBS_OUTPUT}: the drain would leave its "
            "executions running" for job in jobs if job not in named]


def _referenced(value: object, regs: list[Registration], typ: str, among: set[str]) -> list[Registration]:
    """The registrations of `typ` (among the resource's dependencies) whose mocked id names `value`:
    the mocks give a GCP resource the id `projects/<project>/<logical name>`."""
    return [r for r in regs if r.type == typ and r.urn in among and str(value or "").endswith(f"/{r.name}")]


def direct_vpc_violations(registrations: Iterable[Registration]) -> list[str]:
    """Every subnetwork and network a Cloud Run service or job egresses through survives the destroy."""
    regs = list(registrations)
    found = []
    for service in (r for r in regs if r.type in ("gcp:cloudrunv2/service:Service", "gcp:cloudrunv2/job:Job")):
        template = unwrap(service.inputs).get("template") or {}
        if service.type.endswith("job:Job"):  # a job's task template is one level down
            template = template.get("template") or {}
        interfaces = (template.get("vpcAccess") or {}).get("networkInterfaces")
        needed: list[Registration] = []
        for interface in interfaces or []:
            subnetworks = _referenced(interface.get("subnetwork"), regs, SUBNETWORK, set(service.dependencies))
            needed += subnetworks + _referenced(interface.get("network"), regs, NETWORK, set(service.dependencies))
            for subnetwork in subnetworks:
                needed += _referenced(unwrap(subnetwork.inputs).get("network"), regs, NETWORK,
                                      set(subnetwork.dependencies))
        hours = "-".join(str(s // 3600) for s in DIRECT_VPC_ADDRESS_HOLD)
        found += [f"{reg.type} {reg.name}: {service.name}'s Direct VPC egress holds addresses here for {hours} h "
                  "after the service is deleted, so `pulumi destroy` fails deleting it "
                  "(resourceInUseByAnotherResource); it needs retain_on_delete (and deleting later)"
                  for reg in {r.urn: r for r in needed}.values() if not reg.retain_on_delete]
    return found


def retained_name_violations(registrations: Iterable[Registration]) -> list[str]:
    """A network a destroy leaves must have a fixed name: a generated one leaves one more network
    per destroy and `up` (a project's default VPC network quota is 15)."""
    return [f"{reg.type} {reg.name}: a destroy leaves it (retain_on_delete) and its name is generated, so every "
            "destroy and re-create leaves one more network behind; give it a fixed name"
            for reg in registrations
            if reg.type in (NETWORK, SUBNETWORK) and reg.retain_on_delete and not unwrap(reg.inputs).get("name")]


def task_definition_notes(registrations: Iterable[Registration]) -> list[str]:
    """The ECS task definitions a destroy leaves ACTIVE (`skip_destroy`), and the commands that
    deregister them (also the stack output `deregisterTaskDefinitions`)."""
    registered = list(registrations)
    regions = [str(unwrap(reg.inputs).get("region")) for reg in registered if reg.type == "pulumi:providers:aws"]
    families = sorted({str(unwrap(reg.inputs)["family"]) for reg in registered
                       if reg.type == TASK_DEFINITION and unwrap(reg.inputs).get("skipDestroy")})
    if not families or len(set(regions)) != 1:
        return []
    return [f"`pulumi destroy` leaves every revision of {', '.join(families)} ACTIVE (skip_destroy); "
            "the drain before it (`python -m stacks.drain`) deregisters them; a destroy without it leaves them, "
            "so after it: "
            + "; ".join(deregister_command(family, regions[0]) for family in families)]


def leftover_notes(registrations: Iterable[Registration], project: str, region: str) -> list[str]:
    """How to find and delete what a destroy of this stack leaves behind: on GCP the networks, once
    Cloud Run let go; on AWS the bot task definitions' revisions."""
    registered = list(registrations)
    kept = [(reg.type, str(unwrap(reg.inputs).get("name"))) for reg in registered
            if reg.type in (NETWORK, SUBNETWORK) and reg.retain_on_delete]
    if not kept:
        return task_definition_notes(registered)
    subnetworks = [name for typ, name in kept if typ == SUBNETWORK]
    networks = [name for typ, name in kept if typ == NETWORK]
    return [f"`pulumi destroy` leaves network(s) {', '.join(networks)} and subnetwork(s) {', '.join(subnetworks)} "
            "(Cloud Run holds their addresses 1-2 h); "
            "an `up` before they are deleted stops with alreadyExists. Find them: gcloud compute networks list "
            f"--project {project} --filter='name=({' '.join(networks)})'; about two hours after the destroy: "
            + "; ".join([f"gcloud compute networks subnets delete {n} --region {region} --project {project}"
                         for n in subnetworks] + [f"gcloud compute networks delete {n} --project {project}"
                                                  for n in networks])]
