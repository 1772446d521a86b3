"""One adapter per provider so the contract suite can drive each fake the same way.

`make()` builds a provider the way `dispatcher.factory.build_machines` would, from environment variables
pointing at the fake (a new instance = another dispatcher replica). The remaining methods move
the fake's machine as the real provider would, or inject the provider's documented failures.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dispatcher.machines.base import Machines, MachineState
from dispatcher.machines.ecs import EcsMachines, EcsSettings
from dispatcher.machines.fly import FlyMachines, FlySettings
from dispatcher.machines.gce import GceMachines, GceSettings
from dispatcher.machines.local import LocalMachines, LocalSettings
from tests.dispatcher.conftest import STANDIN_BOT
from tests.fakes import fly as fly_fake
from tests.fakes import gce as gce_fake
from tests.fakes.ecs import EcsProxy, moto_task

FAST = {"RETRY_DEADLINE_SECONDS": "3"}


@dataclass
class Harness:
    name: str
    fake: Any
    env: dict[str, str]
    factory: Callable[[dict[str, str]], Machines]
    # (session id, "starting"|"started"|"ended"|"failed"); may return an awaitable to wait on
    set_state: Callable[[str, str], object]
    throttle: Callable[[int], None]  # the next N launches are throttled (429 / ThrottlingException)
    reject: Callable[[], None]  # the next launch is refused for good (4xx)
    # Every create call the fake received for a session ("" = any), as {session_id, room_url, token}.
    received: Callable[[str], list[dict[str, str]]]

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

    return Harness(
        name="fly",
        fake=fake,
        env={**fake.env, "FLY_RETRY_DEADLINE_SECONDS": "3"},
        factory=lambda env: FlyMachines(FlySettings.from_env(env)),
        set_state=set_state,
        throttle=lambda n: fake.fail(429, times=n, retry_after=0.05, method="POST", path_contains="/machines"),
        reject=lambda: fake.fail(422, method="POST", path_contains="/machines", body={"error": "invalid image"}),
        received=lambda sid: [
            _session_values(c.json()["config"]["env"])
            for c in fake.calls_to("POST", "/machines")
            if sid in ("", c.json()["config"]["env"].get("VOICEFLEET_SESSION_ID"))
        ],
    )


def gce_harness(fake: gce_fake.FakeGce) -> Harness:
    states = {"starting": "PROVISIONING", "started": "RUNNING", "ended": "TERMINATED"}

    def set_state(session_id: str, state: str) -> None:
        if state == "failed":
            raise NotImplementedError("a VM has no exit code; a failed insert is tested in test_gce.py")
        fake.set_status(f"vf-{session_id}", states[state])

    return Harness(
        name="gce",
        fake=fake,
        env={**fake.env, "GCE_RETRY_DEADLINE_SECONDS": "3"},
        factory=lambda env: GceMachines(GceSettings.from_env(env)),
        set_state=set_state,
        throttle=lambda n: fake.fail(429, times=n, retry_after=0.05, method="POST", path_contains="/instances"),
        reject=lambda: fake.fail(
            400,
            method="POST",
            path_contains="/instances",
            body={"error": {"code": 400, "message": "bad template", "errors": [{"reason": "invalid"}]}},
        ),
        received=lambda sid: [
            {"session_id": m["session-id"], "room_url": m["daily-room-url"], "token": m["daily-token"]}
            for m in (
                {i["key"]: i["value"] for i in c.json()["metadata"]["items"]}
                for c in fake.calls_to("POST", "/instances")
            )
            if sid in ("", m["session-id"])
        ],
    )


def ecs_harness(fake: EcsProxy) -> Harness:
    cluster = fake.env["ECS_CLUSTER"]

    def set_state(session_id: str, state: str) -> None:
        runs = [r for r in fake.requests_for("RunTask") if r["startedBy"] == session_id]
        assert runs, f"no RunTask for {session_id}"
        arns = [t["taskArn"] for t in _ecs_tasks(fake, session_id)]
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
        env={**fake.env, "ECS_POLL_SECONDS": "0.05", "ECS_RETRY_DEADLINE_SECONDS": "3"},
        factory=lambda env: EcsMachines(EcsSettings.from_env(env)),
        set_state=set_state,
        throttle=lambda n: fake.fail_action("RunTask", times=n),
        reject=lambda: fake.fail_action("RunTask", error="InvalidParameterException"),
        received=lambda sid: [
            _session_values({e["name"]: e["value"] for e in r["overrides"]["containerOverrides"][0]["environment"]})
            for r in fake.requests_for("RunTask")
            if sid in ("", r["startedBy"])
        ],
    )


def _session_values(env: dict[str, str]) -> dict[str, str]:
    return {"session_id": env["VOICEFLEET_SESSION_ID"], "room_url": env["DAILY_ROOM_URL"], "token": env["DAILY_TOKEN"]}


def _ecs_tasks(fake: EcsProxy, session_id: str) -> list[dict[str, Any]]:
    import boto3

    ecs = boto3.client("ecs", region_name=fake.env["AWS_REGION"], endpoint_url=fake.env["AWS_ENDPOINT_URL"])
    cluster = fake.env["ECS_CLUSTER"]
    arns = ecs.list_tasks(cluster=cluster, startedBy=session_id)["taskArns"]
    return ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []


def local_harness(record_dir: Path) -> Harness:
    """The local provider with the stand-in bot in its signal-driven mode (the caller sets
    STANDIN_MODE=controlled and STANDIN_RECORD_DIR=record_dir in the environment)."""
    made: list[LocalMachines] = []
    signals = {"started": signal.SIGUSR1, "failed": signal.SIGUSR2, "ended": signal.SIGTERM}

    def make(env: dict[str, str]) -> Machines:
        command = STANDIN_BOT if "LOCAL_BOT_COMMAND" not in env else tuple(env["LOCAL_BOT_COMMAND"].split())
        provider = LocalMachines(LocalSettings(bot_command=command, stop_grace_seconds=2))
        made.append(provider)
        return provider

    async def set_state(session_id: str, state: str) -> None:
        provider = next(p for p in made if session_id in p._bots)
        if state != "starting":  # the controlled stand-in starts in "starting" and stays there
            while not (record_dir / f"{session_id}.json").exists():  # its signal handlers are set
                await asyncio.sleep(0.01)
            process = provider._bots[session_id].process
            assert process is not None
            os.kill(process.pid, signals[state])
        want = MachineState(state)
        deadline = asyncio.get_running_loop().time() + 10
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
            {"session_id": r["argv"][r["argv"].index("--session-id") + 1], "room_url": "", "token": ""}
            for r in records
            if session_id in ("", r["argv"][r["argv"].index("--session-id") + 1])
        ]

    return Harness(
        name="local",
        fake=None,
        env={},
        factory=make,
        set_state=set_state,
        throttle=lambda n: None,
        reject=reject,
        received=received,
        replicas_share_machines=False,
        can_throttle=False,
    )
