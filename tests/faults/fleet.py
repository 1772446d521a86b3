"""One adapter per cloud provider for the fault tests: build the provider against its fake with
short timeouts, inject a fault into its *create* call, and read back from the fake itself (never
from the dispatcher) how many machines a session ever got and how many the provider still holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dispatcher.machines.base import Machines
from dispatcher.machines.ecs import EcsMachines, EcsSettings
from dispatcher.machines.fly import FlyMachines, FlySettings
from dispatcher.machines.gce import GceMachines, GceSettings
from tests.fakes.ecs import EcsProxy
from tests.fakes.fly import FakeFly
from tests.fakes.gce import FakeGce

# Per HTTP call: a hanging call costs a fraction of a second, not the default 10 s. Each
# provider's retry deadline leaves room for one retry after a timeout at its own backoff base
# (Fly 0.3 s, GCE 0.5 s, ECS 0.2 s), so "hangs once, then succeeds" never depends on the jitter.
CALL_TIMEOUT = 0.2
DEADLINES = {"fly": 0.8, "gce": 1.0, "ecs": 0.6, "daily": 0.6}


# A call held this long times out on the client, which retries; the fake serves it later.
HANG = CALL_TIMEOUT + 0.3


def hang_after(deadline: float) -> float:
    """Held until after the client has given up (its last attempt timed out by deadline + one
    call) and cleaned up: every held create lands after the answer, in the order it came."""
    return deadline + CALL_TIMEOUT + 0.4


def hang_past(deadline: float) -> float:
    """Longer than the client could possibly wait: a client that waited for it would be late."""
    return answer_within(deadline) + 0.5


def answer_within(deadline: float) -> float:
    """All attempts end by the deadline, plus one call in flight when it passes, plus the
    clean-up calls and the in-process app: generous, yet below a hang."""
    return deadline + 2 * CALL_TIMEOUT + 1.0


@dataclass
class Fleet:
    name: str
    fake: Any
    env: dict[str, str]
    factory: Callable[[dict[str, str]], Machines]
    fail_create: Callable[[int, int], object]  # (HTTP status 429 or 5xx, times)
    hang_create: Callable[[float, int], object]  # (seconds, times): held, then served
    created: Callable[[str], int]  # machines the provider ever created for the session
    live: Callable[[str], int]  # machines of the session the provider still holds

    @property
    def hang_after_answer(self) -> float:
        return hang_after(DEADLINES[self.name])

    @property
    def hang_past_answer(self) -> float:
        return hang_past(DEADLINES[self.name])

    @property
    def answer_within(self) -> float:
        return answer_within(DEADLINES[self.name])

    def make(self, **overrides: str) -> Machines:
        return self.factory({**self.env, **overrides})

    def recover(self) -> None:
        """The provider is healthy again: no more injected failures or held calls."""
        self.fake.knobs.failures.clear()
        self.fake.knobs.delays.clear()
        for knobs in ("action_failures", "action_delays"):  # the ECS proxy's per-action knobs
            getattr(self.fake, knobs, []).clear()

    def settle(self) -> None:
        """Wait until the fake has answered every call it holds (a late create has landed)."""
        settle(self.fake, 2 * self.hang_past_answer)


def settle(fake: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while fake.in_flight() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not fake.in_flight(), "the fake still holds calls"


def fly_fleet(fake: FakeFly) -> Fleet:
    def of(sid: str) -> list[dict[str, Any]]:
        return [m for m in list(fake.machines.values()) if m["config"]["metadata"].get("voicefleet_session") == sid]

    return Fleet(
        name="fly",
        fake=fake,
        env={
            **fake.env,
            "FLY_TIMEOUT_SECONDS": str(CALL_TIMEOUT),
            "FLY_RETRY_DEADLINE_SECONDS": str(DEADLINES["fly"]),
            # The tests look machines up often; Fly's 1/s list limit is the load bench's subject.
            "FLY_LIST_RATE": "100",
            "FLY_LIST_BURST": "100",
        },
        factory=lambda env: FlyMachines(FlySettings.from_env(env)),
        fail_create=lambda status, times: fake.fail(
            status, times=times, retry_after=0.05 if status == 429 else None, method="POST", path_suffix="/machines"
        ),
        hang_create=lambda seconds, times: fake.delay(seconds, times=times, method="POST", path_suffix="/machines"),
        created=lambda sid: len(of(sid)),
        live=lambda sid: sum(1 for m in of(sid) if m["state"] != "destroyed"),
    )


def gce_fleet(fake: FakeGce) -> Fleet:
    def inserts(sid: str) -> list[dict[str, Any]]:
        target = f"/instances/vf-{sid}"
        return [
            op
            for op in list(fake.operations)
            if op["operationType"] == "insert" and op["targetLink"].endswith(target) and not op.get("error")
        ]

    return Fleet(
        name="gce",
        fake=fake,
        env={
            **fake.env,
            "GCE_TIMEOUT_SECONDS": str(CALL_TIMEOUT),
            "GCE_RETRY_DEADLINE_SECONDS": str(DEADLINES["gce"]),
        },
        factory=lambda env: GceMachines(GceSettings.from_env(env)),
        fail_create=lambda status, times: fake.fail(
            status, times=times, retry_after=0.05 if status == 429 else None, method="POST", path_suffix="/instances"
        ),
        hang_create=lambda seconds, times: fake.delay(seconds, times=times, method="POST", path_suffix="/instances"),
        created=lambda sid: len(inserts(sid)),
        live=lambda sid: int(f"vf-{sid}" in fake.instances),
    )


def ecs_fleet(fake: EcsProxy) -> Fleet:
    import boto3

    # Read moto directly, not through the proxy: the proxy's call record stays the dispatcher's.
    ecs = boto3.client("ecs", region_name=fake.env["AWS_REGION"], endpoint_url=fake.moto_url)
    cluster = fake.env["ECS_CLUSTER"]

    def tasks(sid: str, desired: str) -> list[str]:
        arns: list[str] = ecs.list_tasks(cluster=cluster, startedBy=sid, desiredStatus=desired)["taskArns"]
        return arns

    def fail_create(status: int, times: int) -> None:
        if status == 429:
            fake.fail_action("RunTask", error="ThrottlingException", status=400, times=times)
        else:
            fake.fail_action("RunTask", error="ServerException", status=status, times=times)

    return Fleet(
        name="ecs",
        fake=fake,
        env={
            **fake.env,
            "ECS_POLL_SECONDS": "0.05",
            "ECS_CONNECT_TIMEOUT_SECONDS": str(CALL_TIMEOUT),
            "ECS_READ_TIMEOUT_SECONDS": str(CALL_TIMEOUT),
            "ECS_RETRY_DEADLINE_SECONDS": str(DEADLINES["ecs"]),
        },
        factory=lambda env: EcsMachines(EcsSettings.from_env(env)),
        fail_create=fail_create,
        hang_create=lambda seconds, times: fake.delay_action("RunTask", seconds, times=times),
        created=lambda sid: len(set(tasks(sid, "RUNNING")) | set(tasks(sid, "STOPPED"))),
        live=lambda sid: len(tasks(sid, "RUNNING")),
    )
