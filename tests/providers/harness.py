"""One adapter per provider so the contract suite can drive each fake the same way.

`make()` builds a provider the way `providers.build_machines` would, from environment variables
pointing at the fake (a new instance = another dispatcher replica). The remaining methods move
the fake's machine as the real provider would, or inject the provider's documented failures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dispatcher.machines.base import Machines
from dispatcher.machines.ecs import EcsMachines, EcsSettings
from dispatcher.machines.fly import FlyMachines, FlySettings
from dispatcher.machines.gce import GceMachines, GceSettings
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
    set_state: Callable[[str, str], None]  # (session id, "starting"|"started"|"ended"|"failed")
    throttle: Callable[[int], None]  # the next N launches are throttled (429 / ThrottlingException)
    reject: Callable[[], None]  # the next launch is refused for good (4xx)
    # Every create call the fake received for a session ("" = any), as {session_id, room_url, token}.
    received: Callable[[str], list[dict[str, str]]]

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
        env={
            "FLY_API_TOKEN": fly_fake.API_TOKEN,
            "FLY_APP": fly_fake.APP,
            "FLY_API_HOST": fake.url,
            "BOT_IMAGE": "registry.fly.io/voicefleet-bots@sha256:" + "a" * 64,
            "FLY_RETRY_DEADLINE_SECONDS": "3",
        },
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
        env={
            "GCE_PROJECT": gce_fake.PROJECT,
            "GCE_ZONE": gce_fake.ZONE,
            "GCE_INSTANCE_TEMPLATE": gce_fake.TEMPLATE,
            "GCE_API_URL": fake.url,
            "GCE_AUTH": "none",
            "GCE_POLL_SECONDS": "0.05",
            "GCE_RETRY_DEADLINE_SECONDS": "3",
        },
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
