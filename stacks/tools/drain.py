"""Before a destroy: remove every machine the dispatcher launched, with the dispatcher's own providers.

    pulumi config set drain true -s aws-dev && pulumi up -s aws-dev   # the dispatcher scaled to zero
    uv run --project infra python -m stacks.drain aws-dev              # its bots stopped and gone
    pulumi destroy -s aws-dev

Bots are launched by the dispatcher (ECS RunTask, GCE instances.insert), not by Pulumi, so a destroy
does not know them: on AWS their tasks keep the cluster (whose delete the provider retries for only
10 minutes) and their ENIs keep the subnets and the bot security group; on GCP their VMs keep the
subnetwork, and a VM whose bot ends after the destroy removed its self-delete grant powers off and
stays; on Azure their container groups hold the bots' subnet (`ACI_SUBNET_ID`), which the engine
deletes before the resource group, and a subnet in use cannot be deleted. So the destroy is
preceded by two steps: `drain: true` (nothing launches bots any more: the ECS service has no task,
Cloud Run and Container Apps no instance; the stack output `drained` says it is applied), then
this command: it lists this stack's machines the way the dispatcher does (the providers and
the names they read from the stack output `machinesEnvironment`), retires the idle reserve,
stops every session's machine (after `--grace` seconds in which sessions may end on their own) and
waits until none is left; with cells (CLOUDRUN_CELLS, GCE_CELLS, ECS_CELLS, ACI_CELLS) it does so in the
stack's own project, account or resource group and each cell's at once (an ECS cell's through its role, an
ACI cell's as the operator), and names every one it could not drain once it has drained the others. On
AWS it also deregisters the bot task definitions, which the stack keeps on replacement (`skip_destroy`)
and a destroy would leave ACTIVE. Credentials come from the usual chains (AWS profile/SSO, Google ADC,
Azure: a service principal or `az login`, stacks/tools/drain_azure.py), as for `pulumi up`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from google.auth.exceptions import GoogleAuthError

from dispatcher.machines.aci.reserve import AciWarmMachines
from dispatcher.machines.base import MachineState
from dispatcher.machines.cloudrun.provider import CloudRunMachines, CloudRunSettings
from dispatcher.machines.ecs.credentials import NoCredentials
from dispatcher.machines.ecs.provider import EcsSettings
from dispatcher.machines.ecs.reserve import EcsWarmMachines
from dispatcher.machines.gce.provider import GceSettings
from dispatcher.machines.gce.reserve import GceWarmMachines
from dispatcher.outbound.provider_errors import ProviderError
from dispatcher.outbound.retry import Transient
from dispatcher.settings import SettingsError
from stacks.config.phone import FARGATE_MAX_STOP_TIMEOUT
from stacks.shared.contract import BOT_JOBS_OUTPUT
from stacks.tools.drain_azure import SERVICE_PRINCIPAL, ContainerAppReplicas, aci_cell_machines, aci_machines
from stacks.tools.drain_cloud_run import CloudRunInstances, CloudRunTarget, DrainNotApplied
from stacks.tools.drain_creates import DrainCreates
from stacks.tools.drain_ecs import CellTasks, cell_tasks, drain_settings

# Endpoint overrides the operator's environment may add (tests point them at local fakes).
OVERRIDES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECS", "AWS_ENDPOINT_URL_STS", "GCE_API_URL", "GCE_AUTH",
             "CLOUD_RUN_API_URL", "MONITORING_API_URL", "CLOUDRUN_API_URL", "CLOUDRUN_AUTH",
             # Azure: the operator's service principal (else `az login`), and a fake ARM's address
             *SERVICE_PRINCIPAL, "AZURE_AUTHORITY_HOST", "ARM_ENDPOINT", "ACI_AUTH", "ACI_CA_BUNDLE")
UNUSED_CHANNEL = "wss://drain.invalid/bots/channel"  # the drain launches nothing; the reserve wants a URL
MIN_DEADLINE_SECONDS = 900.0
DEADLINE_MARGIN_SECONDS = 300.0  # the sweep's own listings and stops after the dispatcher is gone


class DrainError(Exception):
    """One line for the operator: why the drain stopped."""


@dataclass
class Report:
    retired_idle: set[str] = field(default_factory=set)
    stopped_sessions: set[str] = field(default_factory=set)
    deregistered: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"retired {len(self.retired_idle)} idle reserve machine(s)",
                f"stopped {len(self.stopped_sessions)} session machine(s)",
                *([f"deregistered {len(self.deregistered)} bot task definition revision(s)"] if self.deregistered
                  else [])]


def stack_outputs(stack: str) -> dict[str, Any]:
    shown = subprocess.run(["pulumi", "stack", "output", "--json", "-s", stack], capture_output=True, text=True,
                           timeout=120, check=False)
    if shown.returncode != 0:
        raise DrainError(f"pulumi stack output -s {stack} failed: {shown.stderr.strip()}")
    outputs: dict[str, Any] = json.loads(shown.stdout)
    return outputs


def provider_environment(outputs: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    env = outputs.get("machinesEnvironment")
    if not isinstance(env, dict) or "MACHINES" not in env:
        raise DrainError("the stack has no machinesEnvironment output: `pulumi up` with this program first")
    if outputs.get("drained") is not True:
        raise DrainError("the dispatcher still runs and would launch new bots: "
                         "`pulumi config set drain true` and `pulumi up` first")
    return {**{k: str(v) for k, v in env.items()}, **{k: environ[k] for k in OVERRIDES if k in environ}}


def default_deadline(outputs: Mapping[str, Any]) -> float:
    """Long enough for the dispatcher's last task to go: started right after the `drain: true` up, a
    replaced ECS task drains for the target group's deregistration delay (the stack output
    `deregistrationDelaySeconds`) and then gets its stop timeout, before the sweep itself."""
    delay = outputs.get("deregistrationDelaySeconds")
    if not isinstance(delay, (int, float)) or isinstance(delay, bool):
        return MIN_DEADLINE_SECONDS
    return max(MIN_DEADLINE_SECONDS, float(delay) + FARGATE_MAX_STOP_TIMEOUT + DEADLINE_MARGIN_SECONDS)


def every_job(settings: CloudRunSettings, outputs: Mapping[str, Any]) -> CloudRunSettings:
    """The provider lists its own job's and the listed releases' (RELEASES) executions; a release
    dropped from the list keeps its job while a session of it may still run (stacks/shared/release_builds.py),
    and the stack names those jobs too (BOT_JOBS_OUTPUT): the drain stops their executions as well."""
    jobs = outputs.get(BOT_JOBS_OUTPUT)  # missing: a stack last deployed by a program before it
    if not isinstance(jobs, list) or not all(isinstance(job, str) and job for job in jobs):
        raise DrainError(f"the stack output {BOT_JOBS_OUTPUT} is not a list of Cloud Run job names: "
                         "`pulumi up` with this program first")
    return replace(settings, release_jobs=tuple(dict.fromkeys((*settings.release_jobs, *jobs))))


def _vms(settings: GceSettings) -> GceWarmMachines:
    """A project's VMs as the dispatcher lists them (its labels and name prefix), reserve ones too. The drain
    launches nothing: a reserve VM's lifetime does not matter here."""
    return GceWarmMachines(settings, max_idle_seconds=0, max_session_seconds=0, coordination=DrainCreates())


def _ecs_client(settings: EcsSettings) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
                    retries={"max_attempts": 5, "mode": "standard"})
    return boto3.client("ecs", region_name=settings.region, endpoint_url=settings.endpoint_url, config=config)


class Drain:
    def __init__(self, outputs: Mapping[str, Any], env: Mapping[str, str], *, grace: float, deadline: float,
                 poll: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.outputs, self.env = outputs, env
        self.grace, self.deadline, self.poll = grace, deadline, poll
        # Seams: tests see the waits without waiting them. `now` is the wall clock Cloud Run's
        # timestamps are compared with.
        self.clock, self.sleep, self.now = clock, sleep, now
        self.report = Report()
        self.machines: EcsWarmMachines | GceWarmMachines | CloudRunMachines | AciWarmMachines
        # CLOUDRUN_CELLS or GCE_CELLS: each project's own, swept with the stack's, by the cell's name and project
        self.cell_machines: dict[str, CloudRunMachines | GceWarmMachines | CellTasks | AciWarmMachines] = {}
        self.cells_label = ""  # the provider's name, said of the cells not drained
        self.cells_place = "project"  # what a cell is: a project, an account
        self.ecs: EcsSettings | None = None
        self.cloud_run: CloudRunInstances | None = None
        self.container_app: ContainerAppReplicas | None = None
        if env["MACHINES"] == "ecs":
            self.ecs = drain_settings(env)
            self.machines = EcsWarmMachines(replace(self.ecs, cells=()), channel_url=UNUSED_CHANNEL,
                                            coordination=DrainCreates())
            # ECS_CELLS: each account's own, through the cell's role (the stack's own is swept too, a cell or not)
            self.cell_machines.update(cell_tasks(self.ecs, channel_url=UNUSED_CHANNEL))
            self.cells_label, self.cells_place = "ECS", "account"
        elif env["MACHINES"] == "gce":
            gce = GceSettings.from_env(env)
            self.machines = _vms(gce)
            # GCE_CELLS: each cell's project, by the same labels and names (the stack's own is swept too, listed
            # or not: its VMs from before the cells, or a reserve's).
            self.cell_machines = {f"cell {cell.name} ({cell.project})": _vms(gce.for_cell(cell)) for cell in gce.cells}
            self.cells_label = "Compute Engine"
            self.cloud_run = CloudRunInstances(CloudRunTarget.from_outputs(outputs, env))
        elif env["MACHINES"] == "cloudrun":  # executions end when cancelled: nothing stays listed after
            settings = every_job(CloudRunSettings.from_env(env), outputs)
            self.machines = CloudRunMachines(settings, coordination=DrainCreates())
            self.cell_machines = {f"cell {cell.name} ({cell.project})": CloudRunMachines(
                settings.for_cell(cell), coordination=DrainCreates()) for cell in settings.cells}
            self.cells_label = "Cloud Run"
            self.cloud_run = CloudRunInstances(CloudRunTarget.from_outputs(outputs, env))
        elif env["MACHINES"] == "aci":  # a Terminated group stays listed (and holds its quota slot) until deleted
            aci = aci_machines(env)
            self.machines = aci
            # ACI_CELLS: each cell's resource group, by the same prefix and tags (the stack's own is swept too)
            self.cell_machines.update(aci_cell_machines(env))
            self.cells_label, self.cells_place = "ACI", "resource group"
            self.container_app = ContainerAppReplicas(aci.settings, aci.token, str(outputs.get("dispatcherApp") or ""))
        else:
            raise DrainError(f"MACHINES={env['MACHINES']!r}: only ecs, gce, cloudrun and aci stacks are drained")

    async def run(self) -> Report:
        started = self.clock()
        try:
            if self.ecs is not None:
                await self._dispatcher_gone(started)
            if self.cloud_run is not None:
                await self._cloud_run_gone(started, self.cloud_run)
            if self.container_app is not None:
                await self._container_app_gone(started, self.container_app)
            if self.cell_machines:
                await self._sweep_cells(started)
            else:
                await self._sweep(started, self.machines)
            if self.ecs is not None:
                await asyncio.to_thread(self._deregister_task_definitions)
        finally:
            for machines in (self.machines, *self.cell_machines.values()):
                await machines.aclose()
            if self.cloud_run is not None:
                await self.cloud_run.aclose()
            if self.container_app is not None:
                await self.container_app.aclose()
        return self.report

    async def _sweep_cells(self, started: float) -> None:
        """The stack's own project and every cell's, swept together: each one's stops are sent at once and
        their waits overlap, so the deadline bounds the slowest project, not their sum. One that refuses,
        does not answer or still holds machines at the deadline is reported, and the others are still swept
        (a destroy waits for every project, so each must be known); so is one whose sign-in fails (each
        signs in on its own)."""
        projects = {f"the stack's own {self.cells_place}": self.machines, **self.cell_machines}

        async def swept(machines: GceWarmMachines | CloudRunMachines | EcsWarmMachines | AciWarmMachines
                        ) -> str | None:
            try:
                await self._sweep(started, machines)
            except ProviderError as exc:
                return f"{exc.reason}: {exc}"
            except (NoCredentials, Transient, GoogleAuthError) as exc:  # its own sign-in, given up: as `main` says
                return f"credentials: {exc}"
            except DrainError as exc:  # its deadline: the others' own sweeps end at theirs
                return str(exc)
            return None

        found = await asyncio.gather(*(swept(machines) for machines in projects.values()))
        if failed := [f"{name}: {why}" for name, why in zip(projects, found, strict=True) if why is not None]:
            raise DrainError(f"{len(failed)} of {len(projects)} {self.cells_label} {self.cells_place}s not drained "
                             f"({'; '.join(failed)}); the others were ({len(self.report.stopped_sessions)} session "
                             "machine(s) stopped): fix each one named and run the drain again")

    async def _cloud_run_gone(self, started: float, cloud_run: CloudRunInstances) -> None:
        """GCP: `drain: true` scaled Cloud Run to zero; wait until its last instance is gone
        (stacks/tools/drain_cloud_run.py says how that is seen)."""
        while True:
            try:
                reading = await cloud_run.reading(self.now())
            except DrainNotApplied as exc:
                raise DrainError(str(exc)) from None
            if reading.gone:
                return
            self._check_deadline(started, reading.why)
            await self.sleep(self.poll)

    async def _container_app_gone(self, started: float, app: ContainerAppReplicas) -> None:
        """Azure: `drain: true` lets the Container App scale to zero; wait until ARM counts no replica."""
        while running := await app.running():
            self._check_deadline(started, f"the dispatcher's Container App {app.app} still runs {running} replica(s)")
            await self.sleep(self.poll)

    async def _dispatcher_gone(self, started: float) -> None:
        """ECS: `drain: true` set the service's desired count to 0; wait for its last task to stop."""
        assert self.ecs is not None
        client = _ecs_client(self.ecs)
        service = str(self.outputs.get("dispatcherService") or "")
        while True:
            found = await asyncio.to_thread(client.describe_services, cluster=self.ecs.cluster, services=[service])
            running = sum(int(s.get("runningCount", 0)) + int(s.get("pendingCount", 0))
                          for s in found.get("services", []) if s.get("status") != "INACTIVE")
            wanted = sum(int(s.get("desiredCount", 0)) for s in found.get("services", []))
            if wanted:
                raise DrainError(f"the dispatcher service {service} still wants {wanted} task(s): "
                                 "`pulumi config set drain true` and `pulumi up` first")
            if not running:
                return
            self._check_deadline(started, f"the dispatcher service {service} still runs {running} task(s)")
            await self.sleep(self.poll)

    async def _sweep(self, started: float,
                     machines: EcsWarmMachines | GceWarmMachines | CloudRunMachines | AciWarmMachines) -> None:
        # A VM stays listed (TERMINATED) until deleted, and so does an ACI group (Terminated).
        gce = isinstance(machines, (GceWarmMachines, AciWarmMachines))
        while True:
            sessions = [m for m in await machines.list() if gce or m.state.is_active]
            # Cloud Run: no reserve to retire (the dispatcher holds none there)
            idle = [] if isinstance(machines, CloudRunMachines) else await machines.idle_machines()
            if not sessions and not idle:
                return
            self._check_deadline(started, f"{len(sessions)} session and {len(idle)} idle machine(s) remain")
            for bot in idle:
                assert not isinstance(machines, CloudRunMachines)
                await machines.retire(bot.bot_id)
                self.report.retired_idle.add(bot.bot_id)
            in_grace = self.clock() - started < self.grace
            for machine in sessions:
                if in_grace and machine.state.is_active:
                    continue  # may still end on its own (the bot's own timer ends it at the latest)
                if machine.state is not MachineState.ENDED or gce:
                    await machines.stop(machine.session_id)
                    self.report.stopped_sessions.add(machine.session_id)
            await self.sleep(self.poll)

    def _deregister_task_definitions(self) -> None:
        assert self.ecs is not None
        client = _ecs_client(self.ecs)
        for family in self.ecs.families:
            pages = client.get_paginator("list_task_definitions").paginate(familyPrefix=family, status="ACTIVE")
            for arn in (arn for page in pages for arn in page.get("taskDefinitionArns", [])):
                if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family:  # the prefix also matches bot-webrtc
                    client.deregister_task_definition(taskDefinition=arn)
                    self.report.deregistered.append(arn)

    def _check_deadline(self, started: float, remaining: str) -> None:
        if self.clock() - started > self.deadline:
            raise DrainError(f"not drained after {self.deadline:.0f} s: {remaining}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.drain", description=__doc__.splitlines()[0])
    parser.add_argument("stack", help="the stack to drain, e.g. aws-dev")
    parser.add_argument("--outputs", help="the stack's outputs as JSON (default: `pulumi stack output --json`)")
    parser.add_argument("--grace", type=float, default=0.0,
                        help="seconds live sessions may take to end on their own before they are stopped")
    parser.add_argument("--deadline", type=float, default=None,
                        help="give up after this many seconds (default: the stack's deregistration delay, its "
                             "stop timeout and a margin; at least 900)")
    parser.add_argument("--poll", type=float, default=5.0, help="seconds between listings")
    args = parser.parse_args(argv)
    try:
        if args.outputs:
            with open(args.outputs) as file:
                outputs = json.load(file)
        else:
            outputs = stack_outputs(args.stack)
        env = provider_environment(outputs, os.environ)
        deadline = args.deadline if args.deadline is not None else default_deadline(outputs) + args.grace
        drain = Drain(outputs, env, grace=args.grace, deadline=deadline, poll=args.poll)
        report = asyncio.run(drain.run())
    except (DrainError, SettingsError, OSError, ValueError) as exc:
        print(f"{args.stack}: not drained: {exc}", file=sys.stderr)
        return 1
    except ProviderError as exc:  # the cloud refused a list or a stop: say which, never a traceback
        print(f"{args.stack}: not drained: {exc.reason}: {exc}", file=sys.stderr)
        return 1
    except (NoCredentials, Transient, GoogleAuthError) as exc:  # no cloud credentials, or none that work
        print(f"{args.stack}: not drained: credentials: {exc}", file=sys.stderr)
        return 1
    for line in report.lines():
        print(f"{args.stack}: {line}")
    print(f"{args.stack}: drained; `pulumi destroy -s {args.stack}` can run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
