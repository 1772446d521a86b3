"""One adapter per provider so the contract, dispatch and fault tests drive each fake the same way.

`make()` builds a provider the way `dispatcher.factory.build_machines` would, from environment
variables pointing at the fake (a new instance = another dispatcher replica). The remaining
methods move the fake's machine as the real provider would, inject the provider's documented
failures into its *create* call, and read back from the fake itself (never from the dispatcher)
how many machines a session ever got and how many the provider still holds.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bot.identity import MachineIdentity
from botchannel.contract import Hello, Report
from dispatcher.channel.bots import BotLink
from dispatcher.machines.aci.provider import AciMachines
from dispatcher.machines.base import LaunchSpec, Machines, MachinesError, MachineState
from dispatcher.machines.cerebrium.provider import CerebriumMachines, CerebriumSettings
from dispatcher.machines.cloudrun.provider import CloudRunMachines, CloudRunSettings
from dispatcher.machines.ecs.provider import EcsMachines, EcsSettings
from dispatcher.machines.fly.provider import FlyMachines, FlySettings
from dispatcher.machines.gce.provider import GceMachines, GceSettings
from dispatcher.machines.k8s.pods import pod_body
from dispatcher.machines.k8s.provider import K8sMachines
from dispatcher.machines.k8s.settings import K8sSettings
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.store.local import LocalCoordination
from dispatcher.store.secrets_vault import MemoryVault
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.fakes import cloud_run_jobs as cloud_run_fake
from tests.fakes import fly as fly_fake
from tests.fakes import gce as gce_fake
from tests.fakes import modal_server as modal_fake
from tests.fakes.arm_aci import FakeArmAci
from tests.fakes.cerebrium import FakeCerebrium
from tests.fakes.ecs import ACCOUNT as ECS_ACCOUNT
from tests.fakes.ecs import EcsProxy, moto_task
from tests.fakes.k8s import FakeKubernetes
from tests.fakes.k8s_sandbox import POOL, FakeAgentSandbox
from tests.fakes.server import Hold
from tests.support.processes import signal_once_caught
from tests.support.waiting import until

FAST = {"RETRY_DEADLINE_SECONDS": "3"}
MODAL_RETRY_HINT = 0.4  # seconds: a throttled Sandbox create's hint, shorter than any test's call timeout


@dataclass
class Harness:
    name: str
    fake: Any
    env: dict[str, str]
    factory: Callable[[dict[str, str]], Machines]
    # (session id, "starting"|"started"|"ended"|"failed"); may return an awaitable to wait on
    set_state: Callable[[str, str], object]
    fail_create: Callable[[int, int], object]  # (HTTP status 429 or 5xx, times): throttled or failing
    hold_create: Callable[[int], Hold]  # (times): held until released, then served
    reject: Callable[[], None]  # the next launch is refused for good (4xx)
    # Every create call the fake received for a session ("" = any), as {session_id, room_url, token,
    # ice_config, body, channel_token} ("" where the launch values hold none).
    received: Callable[[str], list[dict[str, str]]]
    created: Callable[[str], int]  # machines the provider ever created for the session
    live: Callable[[str], int]  # machines of the session the provider still holds
    # The identity token the session's machine's own bot sends in its hello (its machine booted and
    # asked its provider, as bot/identity.py does); None where the provider issues none.
    identity: Callable[[str], Awaitable[str | None]] = lambda sid: _no_identity()
    # The machine id that bot names in its hello (a Cloud Run bot: its execution's name).
    machine_id: Callable[[str], str] = lambda sid: "cold-1"

    # True where the provider issues its machines no channel credential (an agent-sandbox pool's pods): a bot
    # dials with its machine's identity alone, and a deployment without a channel cannot reach it.
    identity_only: bool = False
    # False where a machine is known only to the dispatcher process that launched it (local).
    replicas_share_machines: bool = True
    can_throttle: bool = True

    async def move(self, session_id: str, state: str) -> None:
        """Put the session's machine in `state`, as the provider would, and wait until it is."""
        result = self.set_state(session_id, state)
        if inspect.isawaitable(result):
            await result

    def launched(self) -> set[str]:
        """Every session the fake received a create for."""
        return {r["session_id"] for r in self.received("")}

    def make(self, **overrides: str) -> Machines:
        return self.factory({**self.env, **overrides})

    def throttle(self, times: int) -> None:
        """The next `times` launches are throttled (429 / ThrottlingException)."""
        self.fail_create(429, times)

    def with_env(self, **overrides: str) -> Harness:
        """The same provider and fake, built with other settings (e.g. the fault tests' timeouts)."""
        return replace(self, env={**self.env, **overrides})

    def recover(self) -> None:
        """The provider is healthy again: no more injected failures; held calls are released."""
        self.fake.reset_knobs()

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until the fake has answered every call it received (a released create has landed)."""
        settle(self.fake, timeout)


async def refused_second_launch(machines: Machines, spec: Callable[[], LaunchSpec]) -> MachinesError:
    """Launches one session, then a second that the provider (at its limit) must refuse; closes the
    provider either way and returns the refusal."""
    try:
        await machines.launch(spec())
        try:
            await machines.launch(spec())
        except MachinesError as refused:
            return refused
        raise AssertionError("the second launch was not refused")
    finally:
        await machines.aclose()


async def _no_identity() -> str | None:
    return None


def gce_identity(fake: gce_fake.FakeGce, instance: str) -> Callable[[], Awaitable[str | None]]:
    """The token the bot on `instance` gets from its own metadata server (the VM boots first)."""
    async def token() -> str | None:
        fake.set_status(instance, "RUNNING")
        env = {"GCE_METADATA_HOST": fake.metadata_host(instance)}
        return await MachineIdentity("gce", gce_fake.CHANNEL_AUDIENCE, env).token()

    return token


def fly_identity(fake: fly_fake.FakeFly, name: str) -> Callable[[], Awaitable[str | None]]:
    """The token the bot on machine `name` gets through its own API socket (the machine starts first)."""
    async def token() -> str | None:
        fake.set_state(name, "started")
        env = {"BOT_FLY_API_SOCKET": fake.machine_socket(fake.by_name(name)["id"])}
        return await MachineIdentity("fly", fly_fake.CHANNEL_AUDIENCE, env).token()

    return token


def settle(fake: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while fake.in_flight() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not fake.in_flight(), "the fake still holds calls"


def fly_harness(fake: fly_fake.FakeFly) -> Harness:
    states = {
        "starting": ("created", None),
        "started": ("started", None),
        "ended": ("stopped", 0),
        "failed": ("stopped", 3),
    }

    def set_state(session_id: str, state: str) -> None:
        fly_state, code = states[state]
        fake.set_state(f"vf-{session_id}", fly_state, exit_code=code)

    def of(sid: str) -> list[dict[str, Any]]:
        return [m for m in list(fake.machines.values()) if m["config"]["metadata"].get("voicefleet_session") == sid]

    # One store for every replica the test makes, as replicas share REDIS_URL: an app's list bucket
    # (`fly-list:<app>`) is the deployment's, and a replica of its own would list past Fly's 1/s, burst 3.
    coordination = LocalCoordination()
    return Harness(
        name="fly",
        fake=fake,
        env={**fake.env, "FLY_RETRY_DEADLINE_SECONDS": "3"},
        factory=lambda env: FlyMachines(FlySettings.from_env(env), coordination),
        set_state=set_state,
        fail_create=lambda status, times: fake.fail(
            status, times=times, retry_after=0.05 if status == 429 else None, method="POST", path_suffix="/machines"
        ),
        hold_create=lambda times: fake.hold(times=times, method="POST", path_suffix="/machines"),
        reject=lambda: fake.fail(422, method="POST", path_suffix="/machines", body={"error": "invalid image"}),
        received=lambda sid: [
            _session_values(c.json()["config"]["env"])
            for c in fake.calls_to("POST", "/machines")
            if sid in ("", c.json()["config"]["env"].get("VOICEFLEET_SESSION_ID"))
        ],
        created=lambda sid: len(of(sid)),
        live=lambda sid: sum(1 for m in of(sid) if m["state"] != "destroyed"),
        identity=lambda sid: fly_identity(fake, f"vf-{sid}")(),
    )


def gce_harness(fake: gce_fake.FakeGce) -> Harness:
    states = {"starting": "PROVISIONING", "started": "RUNNING", "ended": "TERMINATED"}

    def set_state(session_id: str, state: str) -> None:
        if state == "failed":
            raise NotImplementedError("a VM has no exit code; a failed insert is tested in test_gce.py")
        fake.set_status(f"vf-{session_id}", states[state])

    def inserts(sid: str) -> list[dict[str, Any]]:
        target = f"/instances/vf-{sid}"
        return [
            op
            for op in list(fake.operations)
            if op["operationType"] == "insert" and op["targetLink"].endswith(target) and not op.get("error")
        ]

    return Harness(
        name="gce",
        fake=fake,
        env={**fake.env, "GCE_RETRY_DEADLINE_SECONDS": "3"},
        factory=lambda env: GceMachines(GceSettings.from_env(env), coordination=LocalCoordination()),
        set_state=set_state,
        fail_create=lambda status, times: fake.fail(
            status, times=times, retry_after=0.05 if status == 429 else None, method="POST", path_suffix="/instances"
        ),
        hold_create=lambda times: fake.hold(times=times, method="POST", path_suffix="/instances"),
        reject=lambda: fake.fail(
            400,
            method="POST",
            path_suffix="/instances",
            body={"error": {"code": 400, "message": "bad template", "errors": [{"reason": "invalid"}]}},
        ),
        received=lambda sid: [
            {
                "session_id": m["session-id"],
                "room_url": m["daily-room-url"],
                "token": m["daily-token"],
                "ice_config": m["ice-config"],
                "body": m["bot-body"],
                "channel_token": m["bot-channel-token"],
            }
            for m in (
                {i["key"]: i["value"] for i in c.json()["metadata"]["items"]}
                for c in fake.calls_to("POST", "/instances")
            )
            if sid in ("", m["session-id"])
        ],
        created=lambda sid: len(inserts(sid)),
        live=lambda sid: int(f"vf-{sid}" in fake.instances),
        identity=lambda sid: gce_identity(fake, f"vf-{sid}")(),
    )


def cloudrun_harness(fake: cloud_run_fake.FakeCloudRunJobs) -> Harness:
    states = {"starting": "starting", "started": "started", "ended": "succeeded", "failed": "failed"}

    def execution(sid: str) -> str:
        [one] = fake.of_session(sid)
        return str(one["name"]).rsplit("/", 1)[-1]

    def set_state(session_id: str, state: str) -> None:
        fake.set_state(execution(session_id), states[state], exit_code=3 if state == "failed" else None)

    async def identity(sid: str) -> str | None:
        name = execution(sid)
        if not fake.execution(name).get("runningCount"):
            fake.set_state(name, "started")  # the task runs: its bot asks its metadata server
        nonce = fake.env_of(fake.execution(name))["VOICEFLEET_EXECUTION_NONCE"]  # its run's own
        env = {"GCE_METADATA_HOST": fake.metadata_host(name), "VOICEFLEET_EXECUTION_NONCE": nonce}
        return await MachineIdentity("cloudrun", cloud_run_fake.CHANNEL_AUDIENCE, env).token()

    return Harness(
        name="cloudrun",
        fake=fake,
        env={**fake.env, "CLOUDRUN_RETRY_DEADLINE_SECONDS": "3"},
        factory=lambda env: CloudRunMachines(CloudRunSettings.from_env(env), coordination=LocalCoordination()),
        set_state=set_state,
        fail_create=lambda status, times: fake.fail(
            status, times=times, retry_after=0.05 if status == 429 else None, method="POST", path_suffix=":run"),
        hold_create=lambda times: fake.hold(times=times, method="POST", path_suffix=":run"),
        reject=lambda: fake.fail(400, method="POST", path_suffix=":run", body={"error": {
            "code": 400, "status": "INVALID_ARGUMENT", "message": "bad overrides"}}),
        received=lambda sid: [
            _session_values({e["name"]: e["value"] for e in c.json()["overrides"]["containerOverrides"][0]["env"]})
            for c in fake.calls_to("POST", ":run")
            if sid in ("", _run_session(c.json()))
        ],
        created=lambda sid: len(fake.of_session(sid)),
        live=lambda sid: sum(1 for e in fake.of_session(sid) if not e.get("completionTime")),
        identity=identity,
        machine_id=execution,
    )


def _run_session(body: dict[str, Any]) -> str:
    env = body["overrides"]["containerOverrides"][0]["env"]
    return next((e["value"] for e in env if e["name"] == "VOICEFLEET_SESSION_ID"), "")


def modal_harness(fake: modal_fake.FakeModal) -> Harness:
    from grpclib.const import Status

    from dispatcher.machines.modal.provider import ModalMachines
    from dispatcher.machines.modal.settings import ModalSettings

    def set_state(session_id: str, state: str) -> None:
        if state == "failed":
            fake.set_state(f"vf-{session_id}", "ended", exit_code=3)
        else:
            fake.set_state(f"vf-{session_id}", state)

    def fail_create(status: int, times: int) -> None:
        if status == 429:  # with Modal's retry hint, as the other fakes' 429s carry a Retry-After
            fake.fail("SandboxCreate", Status.RESOURCE_EXHAUSTED, times=times, retry_after=MODAL_RETRY_HINT)
        else:
            fake.fail("SandboxCreate", Status.UNAVAILABLE, times=times)

    def of(sid: str) -> list[modal_fake.FakeSandbox]:
        return [s for s in list(fake.creates) if s.tags.get("voicefleet_session") == sid]

    async def identity(sid: str) -> str | None:
        """The Sandbox's OIDC token, as Modal sets it in its env once it schedules it (its bot runs no sooner)."""
        boxes = of(sid)
        if not boxes:
            return None
        await until(lambda: boxes[-1].task_id or boxes[-1].finished, f"Sandbox of {sid} scheduled")
        return boxes[-1].env.get("MODAL_IDENTITY_TOKEN")

    return Harness(
        name="modal",
        fake=fake,
        # Throttled creates are retried after Modal's hint (5 s); the contract's are retried sooner.
        env={**fake.env, "MODAL_RETRY_DEADLINE_SECONDS": "3", "MODAL_POLL_SECONDS": "0.05"},
        factory=lambda env: ModalMachines(ModalSettings.from_env(env), coordination=LocalCoordination()),
        set_state=set_state,
        fail_create=fail_create,
        hold_create=fake.hold_creates,
        reject=lambda: fake.fail("SandboxCreate", Status.INVALID_ARGUMENT, "Image not runnable"),
        received=lambda sid: [_session_values(env) for env in list(fake.create_calls)
                              if "VOICEFLEET_SESSION_ID" in env and sid in ("", env["VOICEFLEET_SESSION_ID"])],
        created=lambda sid: len(of(sid)),
        live=lambda sid: sum(1 for s in of(sid) if not s.finished),
        identity=identity,
    )


def aci_harness(fake: FakeArmAci) -> Harness:
    states = {"starting": ("Waiting", None), "started": ("Running", None), "ended": ("Terminated", 0),
              "failed": ("Terminated", 3)}

    def set_state(session_id: str, state: str) -> None:
        fake.set_state(f"vf-{session_id}", *states[state])

    def puts(sid: str) -> list[dict[str, str]]:
        return [v for v in fake.secure.values() if sid in ("", v.get("VOICEFLEET_SESSION_ID"))]

    return Harness(
        name="aci",
        fake=fake,
        env={**fake.env, "ACI_RETRY_DEADLINE_SECONDS": "3"},
        factory=lambda env: AciMachines.from_env(env, LocalCoordination()),
        set_state=set_state,
        fail_create=lambda status, times: fake.fail(
            status, times=times, retry_after=0.05 if status == 429 else None, method="PUT",
            path_contains="/containerGroups/"),
        hold_create=lambda times: fake.hold(times=times, method="PUT", path_contains="/containerGroups/"),
        reject=lambda: fake.fail(400, method="PUT", path_contains="/containerGroups/",
                                 body={"error": {"code": "InaccessibleImage", "message": "image not found"}}),
        received=lambda sid: [_session_values(v) for v in puts(sid)],
        created=lambda sid: fake.created.count(f"vf-{sid}"),
        live=lambda sid: int(f"vf-{sid}" in fake.standing()),
    )


def k8s_harness(fake: FakeKubernetes) -> Harness:
    phases = {"starting": ("Pending", None), "started": ("Running", None), "ended": ("Succeeded", 0),
              "failed": ("Failed", 3)}

    def set_state(session_id: str, state: str) -> None:
        fake.set_phase(f"vf-{session_id}", *phases[state])

    def creates(sid: str) -> list[dict[str, str]]:
        return [e for e in fake.envs.values() if sid in ("", e.get("VOICEFLEET_SESSION_ID"))]

    return Harness(
        name="k8s",
        fake=fake,
        env={**fake.env, "K8S_RETRY_DEADLINE_SECONDS": "3"},
        factory=lambda env: K8sMachines.from_env(env),
        set_state=set_state,
        **_create_faults(fake, "/pods", "Pod"),
        received=lambda sid: [_session_values(e) for e in creates(sid)],
        created=lambda sid: fake.created.count(f"vf-{sid}"),
        live=lambda sid: int(f"vf-{sid}" in fake.standing()),
        identity=lambda sid: k8s_identity(fake, f"vf-{sid}")(),
        machine_id=lambda sid: f"vf-{sid}",  # the session's pod: its bot's hello names it
        identity_only=True,  # no credential is issued: its pod's identity alone admits its bot
    )


def k8s_identity(fake: FakeKubernetes, pod: str) -> Callable[[], Awaitable[str | None]]:
    """The token the bot in `pod` reads from its projected volume (its container runs first; in the
    agent-sandbox mode, once the controller has made the claim's Sandbox and its pod)."""
    async def token() -> str | None:
        assert await fake.eventually(lambda: pod in fake.pods, timeout=20), f"no pod {pod}"
        if fake.pods[pod]["status"]["phase"] == "Pending":
            fake.set_phase(pod, "Running")
        # The audience is the projected token's, fixed in the pod's spec: the bot only reads the file.
        return await MachineIdentity("k8s", "", fake.mounted_token(pod)).token()

    return token


def _create_faults(fake: FakeKubernetes, path_suffix: str, kind: str) -> dict[str, Any]:
    """The API server's answers to a create a harness injects: throttled or failing, held, refused."""
    return {
        "fail_create": lambda status, times: fake.fail(
            status, times=times, retry_after=0.05 if status == 429 else None, method="POST", path_suffix=path_suffix),
        "hold_create": lambda times: fake.hold(times=times, method="POST", path_suffix=path_suffix),
        "reject": lambda: fake.fail(422, method="POST", path_suffix=path_suffix, body={
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422,
            "message": f"{kind} is invalid"}),
    }


def k8s_sandbox_harness(fake: FakeAgentSandbox) -> Harness:
    """The agent-sandbox mode on a pool with no warm Sandbox: each claim's Sandbox is cold, named
    `vf-<session id>` after its claim; expiry held back so an ended claim can be read."""
    fake.expiring = False
    phases = {"starting": ("Pending", None), "started": ("Running", None), "ended": ("Succeeded", 0),
              "failed": ("Failed", 3)}

    # The claim's conditions once the controller has seen the pod's phase.
    shown = {"starting": ("Ready", "False"), "started": ("Ready", "True"), "ended": ("Finished", "True"),
             "failed": ("Finished", "True")}

    def condition(name: str, kind: str) -> str | None:
        conditions = (fake.claims.get(name) or {}).get("status", {}).get("conditions") or []
        return next((c["status"] for c in conditions if c["type"] == kind), None)

    async def set_state(session_id: str, state: str) -> None:
        pod = f"vf-{session_id}"
        assert await fake.eventually(lambda: pod in fake.pods, timeout=20), "the controller made no Sandbox"
        fake.set_phase(pod, *phases[state])
        kind, value = shown[state]
        assert await fake.eventually(lambda: condition(pod, kind) == value, timeout=20), f"the claim is not {state}"

    def claims(sid: str) -> list[dict[str, Any]]:
        return [c.json() for c in fake.calls_to("POST", "/sandboxclaims")
                if sid in ("", c.json()["metadata"]["labels"].get("voicefleet.io/session"))]

    def handed(claim: dict[str, Any]) -> dict[str, str]:
        """What the claim puts on its pod (its session's id, read as the launch values' id), nothing else."""
        notes = dict(claim["spec"]["additionalPodMetadata"]["annotations"])
        return _session_values({"VOICEFLEET_SESSION_ID": notes.pop("voicefleet.io/session"), **notes})

    return Harness(
        name="k8s",
        fake=fake,
        env={**fake.env, "K8S_RETRY_DEADLINE_SECONDS": "3"},
        factory=lambda env: _sandbox_claims(fake, env),
        set_state=set_state,
        **_create_faults(fake, "/sandboxclaims", "SandboxClaim"),
        received=lambda sid: [handed(c) for c in claims(sid)],
        created=lambda sid: fake.claims_created.count(f"vf-{sid}"),
        live=lambda sid: int(f"vf-{sid}" in fake.standing()),
        identity=lambda sid: k8s_identity(fake, f"vf-{sid}")(),
        machine_id=lambda sid: f"vf-{sid}",  # its cold Sandbox's pod, named after the claim
        identity_only=True,
    )


def _sandbox_claims(fake: FakeAgentSandbox, env: dict[str, str]) -> Machines:
    from dispatcher.machines.k8s.sandbox import SandboxClaims

    if POOL not in fake.warm_pools:
        settings = K8sSettings.from_env(env)
        fake.add_pool(POOL, 0, pod_body(settings, "template", image=settings.image, env={}, labels={},
                                        annotations={}, deadline_seconds=3600)["spec"])
    return SandboxClaims.from_env(env)


def ecs_harness(fake: EcsProxy, cluster: str | None = None) -> Harness:
    """`cluster`: the test's own, where the proxy's environment names another (a proxy the session shares)."""
    cluster = cluster or fake.env["ECS_CLUSTER"]

    def tasks(sid: str, desired: str) -> list[str]:
        """moto's own record of the cluster's tasks, read in memory, not through the proxy (whose call record
        stays the dispatcher's) nor over HTTP: a signed boto3 call blocked the test's event loop for each
        look, and at load that starved the provider's own calls past their timeout."""
        from moto.ecs.models import ecs_backends

        held = list(ecs_backends[ECS_ACCOUNT][fake.env["AWS_REGION"]].tasks.get(cluster, {}).items())
        return [arn for arn, task in held if task.started_by == sid and task.desired_status == desired]

    def fail_create(status: int, times: int) -> None:
        if status == 429:
            fake.fail_action("RunTask", error="ThrottlingException", status=400, times=times)
        else:
            fake.fail_action("RunTask", error="ServerException", status=status, times=times)

    def set_state(session_id: str, state: str) -> None:
        runs = [r for r in fake.requests_for("RunTask") if r["startedBy"] == session_id]
        assert runs, f"no RunTask for {session_id}"
        arns = [t["taskArn"] for t in _ecs_tasks(fake, session_id, cluster)]
        task = moto_task(cluster, arns[-1])
        if state == "starting":
            task.last_status = "PENDING"
        elif state == "started":
            task.last_status = "RUNNING"
        else:
            task.last_status, task.desired_status = "STOPPED", "STOPPED"
            task.containers[0].exitCode = 0 if state == "ended" else 3

    return Harness(
        name="ecs",
        fake=fake,
        env={**fake.env, "ECS_CLUSTER": cluster, "ECS_POLL_SECONDS": "0.05", "ECS_RETRY_DEADLINE_SECONDS": "3"},
        factory=lambda env: EcsMachines(EcsSettings.from_env(env), LocalCoordination()),
        set_state=set_state,
        fail_create=fail_create,
        hold_create=lambda times: fake.hold_action("RunTask", times=times),
        reject=lambda: fake.fail_action("RunTask", error="InvalidParameterException"),
        received=lambda sid: [
            _session_values({e["name"]: e["value"] for e in r["overrides"]["containerOverrides"][0]["environment"]})
            for r in fake.requests_for("RunTask")
            if sid in ("", r["startedBy"])
        ],
        created=lambda sid: len(set(tasks(sid, "RUNNING")) | set(tasks(sid, "STOPPED"))),
        live=lambda sid: len(tasks(sid, "RUNNING")),
        # the task's bot presigns GetCallerIdentity with its task role's credentials (bot/identity.py)
        identity=lambda sid: fake.task_identity(tasks(sid, "RUNNING")[-1]),
    )


class NoSocket:
    """A channel link's socket the harness never writes to (the states it plays are the bot's words)."""

    async def send_text(self, data: str) -> None:
        raise ConnectionError("the harness plays the bot's channel events, not its socket")

    async def receive_text(self) -> str:
        raise ConnectionError("no socket")

    async def close(self, code: int = 1000) -> None:
        pass


CEREBRIUM_CHANNEL = {"BOT_CHANNEL_TOKEN": "c" * 32, "BOT_CHANNEL_URL": "wss://dispatcher.example/bots/channel"}


def cerebrium_harness(fake: FakeCerebrium) -> Harness:
    """Replicas share one store (its first-claims and the runs' records), as they share Redis. A
    run's state is its bot's channel's word: `set_state` plays the events a replica's channel hands
    the provider (a hello, an `ended` report), as BotChannels does for a real bot (test_cerebrium.py
    runs one)."""
    coordination, records = LocalCoordination(), MemoryVault()
    made: list[CerebriumMachines] = []

    def make(env: dict[str, str]) -> Machines:
        provider = CerebriumMachines(CerebriumSettings.from_env(env), coordination, records=records)
        made.append(provider)
        return provider

    async def set_state(session_id: str, state: str) -> None:
        provider = made[0]
        link = BotLink(Hello(machine_id=f"run-{session_id}", session_id=session_id), NoSocket(), session_id)
        if state in ("started", "ended", "failed"):
            provider.bot_connected(link)
        if state in ("ended", "failed"):
            code = 0 if state == "ended" else 3
            provider.bot_reported(link, Report("ended", session_id, time.time(), reason="peer_disconnected",
                                               exit_code=code))
        await provider.settled()

    return Harness(
        name="cerebrium",
        fake=fake,
        env={**fake.env, **CEREBRIUM_CHANNEL, "CEREBRIUM_RETRY_DEADLINE_SECONDS": "3",
             "CEREBRIUM_POLL_SECONDS": "0.05"},
        factory=make,
        set_state=set_state,
        fail_create=lambda status, times: fake.fail(
            status, times=times, retry_after=0.05 if status == 429 else None, method="POST", path_suffix="/start_bot"),
        hold_create=lambda times: fake.hold(times=times, method="POST", path_suffix="/start_bot"),
        reject=lambda: fake.functions.clear(),  # the app has no such function (any more): 404
        received=lambda sid: [
            {"session_id": c.json()["session_id"], "room_url": "", "token": "", "ice_config": "", "body": "",
             "channel_token": c.json()["channel_token"] or ""}
            for c in fake.calls_to("POST", "/start_bot") if sid in ("", c.json()["session_id"])
        ],
        created=lambda sid: len(fake.of(sid)),
        live=fake.live,
    )


def _session_values(env: dict[str, str]) -> dict[str, str]:
    return {
        "session_id": env["VOICEFLEET_SESSION_ID"],
        "room_url": env.get("DAILY_ROOM_URL", ""),
        "token": env.get("DAILY_TOKEN", ""),
        "ice_config": env.get("VOICEFLEET_ICE_CONFIG", ""),
        "body": env.get("VOICEFLEET_BODY", ""),
        "channel_token": env.get("BOT_CHANNEL_TOKEN", ""),
    }


def _ecs_tasks(fake: EcsProxy, session_id: str, cluster: str | None = None) -> list[dict[str, Any]]:
    import boto3

    cluster = cluster or fake.env["ECS_CLUSTER"]
    ecs = boto3.client("ecs", region_name=fake.env["AWS_REGION"], endpoint_url=fake.env["AWS_ENDPOINT_URL"])
    arns = ecs.list_tasks(cluster=cluster, startedBy=session_id)["taskArns"]
    return ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []


def local_harness(record_dir: Path) -> Harness:
    """The local provider with the stand-in bot in its signal-driven mode (the caller sets
    STANDIN_MODE=controlled and STANDIN_RECORD_DIR=record_dir in the environment)."""
    made: list[LocalMachines] = []
    signals = {"started": signal.SIGUSR1, "failed": signal.SIGUSR2, "ended": signal.SIGTERM}

    def make(env: dict[str, str]) -> Machines:
        command = STANDIN_BOT if "LOCAL_BOT_COMMAND" not in env else tuple(env["LOCAL_BOT_COMMAND"].split())
        provider = LocalMachines(LocalSettings(bot_command=command, stop_grace_seconds=2, bot_env=STANDIN_ENV))
        made.append(provider)
        return provider

    async def set_state(session_id: str, state: str) -> None:
        provider = next(p for p in made if session_id in p._bots)
        if state != "starting":  # the controlled stand-in starts in "starting" and stays there
            process = provider._bots[session_id].process
            assert process is not None
            await signal_once_caught(process.pid, signals[state])
        want = MachineState(state)
        deadline = asyncio.get_running_loop().time() + 60  # a safety net: a loaded machine is slow to poll
        while (machine := await provider.status(session_id)) is None or machine.state is not want:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"local bot of {session_id} did not reach {state}")
            await asyncio.sleep(0.02)

    def reject() -> None:
        # A bot command that cannot run: the local analogue of an API refusing the launch for good.
        for provider in made:
            provider._settings = LocalSettings(bot_command=("/nonexistent/voicefleet-bot",))

    def received(session_id: str) -> list[dict[str, str]]:
        records = [json.loads(p.read_text()) for p in sorted(record_dir.glob("*.json"))]
        return [
            {"session_id": r["session_id"], "room_url": "", "token": ""}
            for r in records
            if session_id in ("", r["session_id"])
        ]

    def unsupported(*_: object) -> Any:
        raise NotImplementedError("local bots have no API to fail or hold")

    return Harness(
        name="local",
        fake=None,
        env={},
        factory=make,
        set_state=set_state,
        fail_create=unsupported,
        hold_create=unsupported,
        reject=reject,
        received=received,
        created=lambda sid: len(received(sid)),
        live=lambda sid: sum(1 for p in made if sid in p._bots and p._bots[sid].state.is_active),
        replicas_share_machines=False,
        can_throttle=False,
    )
