"""The reaper stops overdue machines and ends rooms that outlive their session."""

from __future__ import annotations

import asyncio
import time

import pytest

from dispatcher.machines.base import LaunchSpec
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.media.rooms import RoomGrant
from dispatcher.observability.metrics import Metrics
from dispatcher.sessions.reaper import Reaper, ReaperSettings
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.support.processes import pid_alive

MAX_SESSION = 60


class RecordingRooms:
    """Rooms that only remember what was asked of them (the reaper's view of Daily)."""

    def __init__(self, fail: bool = False, existing: dict[str, float] | None = None) -> None:
        self.deleted: list[str] = []
        self.fail = fail
        self.existing = dict(existing or {})  # session id -> created_at

    async def grant(self, session_id: str, max_session_seconds: int) -> RoomGrant:
        return RoomGrant(f"https://rooms.test/{session_id}", "bot", "user")

    async def room_url(self, session_id: str) -> str:
        return f"https://rooms.test/{session_id}"

    async def create(self, session_id: str, max_session_seconds: int) -> None: ...

    async def bot_present(self, session_id: str) -> bool:
        return False

    async def delete(self, session_id: str) -> None:
        if self.fail:
            raise RuntimeError("rooms API down")
        self.deleted.append(session_id)
        self.existing.pop(session_id, None)

    async def list_sessions(self):
        from dispatcher.media.rooms import RoomInfo

        return [RoomInfo(sid, created) for sid, created in self.existing.items()]

    async def aclose(self) -> None: ...


@pytest.fixture
async def machines():
    provider = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=2, bot_env=STANDIN_ENV))
    yield provider
    await provider.aclose()


async def launch(machines: LocalMachines, session_id: str, transport: str | None = None) -> int:
    await machines.launch(
        LaunchSpec(session_id=session_id, body_digest="d", max_session_seconds=MAX_SESSION, transport=transport)
    )
    await machines.wait_started(session_id, 10)
    return machines._bots[session_id].process.pid


def reaper(machines, rooms=None, *, now_offset: float = 0.0) -> tuple[Reaper, Metrics]:
    metrics = Metrics("local")
    return Reaper(
        machines, rooms, metrics, max_session_seconds=MAX_SESSION,
        settings=ReaperSettings(grace_seconds=30), clock=lambda: time.time() + now_offset,
    ), metrics  # fmt: skip


async def test_a_machine_past_max_session_plus_grace_is_stopped(machines):
    pid = await launch(machines, "a" * 24)
    sweeper, metrics = reaper(machines, now_offset=MAX_SESSION + 31)
    assert (await sweeper.sweep())["overdue"] == 1
    assert not pid_alive(pid)
    assert (await machines.status("a" * 24)).state.value == "ended"
    assert 'voicefleet_reaped_total{outcome="overdue",provider="local"} 1.0' in metrics.render({}).decode()


async def test_a_machine_within_its_session_is_left_alone(machines):
    pid = await launch(machines, "b" * 24)
    sweeper, _ = reaper(machines, now_offset=MAX_SESSION + 29)
    assert await sweeper.sweep() == {}
    assert pid_alive(pid)


async def test_an_ended_machine_still_listed_is_cleaned_once_per_replica():
    provider, rooms = EndedButHeld("g" * 24), RecordingRooms()
    provider.stop = lambda session_id: _record(provider, session_id)  # the provider keeps listing it
    sweeper, _ = reaper(provider, rooms)
    await sweeper.sweep()
    assert await sweeper.sweep() == {}
    assert (provider.stopped, rooms.deleted) == (["g" * 24], ["g" * 24])


async def _record(provider, session_id: str) -> bool:
    provider.stopped.append(session_id)
    return True


class EndedButHeld:
    """A provider that still holds an ended machine (as Compute Engine keeps a powered-off VM)."""

    name = "held"

    def __init__(self, session_id: str) -> None:
        from dispatcher.machines.base import Machine, MachineState

        self.machines = [Machine(session_id, "vm-1", MachineState.ENDED, created_at=time.time())]
        self.stopped: list[str] = []

    async def list(self):
        return list(self.machines)

    async def stop(self, session_id: str) -> bool:
        self.stopped.append(session_id)
        self.machines = [m for m in self.machines if m.session_id != session_id]
        return True


async def test_an_ended_machine_the_provider_still_holds_is_removed_with_its_room():
    provider, rooms = EndedButHeld("c" * 24), RecordingRooms()
    sweeper, _ = reaper(provider, rooms)
    assert (await sweeper.sweep())["ended_session"] == 1
    assert (provider.stopped, rooms.deleted) == (["c" * 24], ["c" * 24])
    assert await sweeper.sweep() == {}  # nothing left to do


async def test_ended_local_bots_hold_nothing_and_are_not_swept(machines):
    await launch(machines, "c" * 24)
    await machines.stop("c" * 24)
    sweeper, _ = reaper(machines, RecordingRooms())
    assert await sweeper.sweep() == {}


async def test_an_overdue_machine_also_loses_its_room(machines):
    await launch(machines, "d" * 24, transport="daily")  # local bots standing in for a cloud provider's
    rooms = RecordingRooms()
    sweeper, _ = reaper(machines, rooms, now_offset=10_000)
    await sweeper.sweep()
    assert rooms.deleted == ["d" * 24]


async def test_an_overdue_webrtc_session_is_stopped_without_a_room_call(machines):
    await launch(machines, "f" * 24, transport="webrtc")
    rooms = RecordingRooms()
    sweeper, _ = reaper(machines, rooms, now_offset=10_000)
    assert (await sweeper.sweep())["overdue"] == 1
    assert rooms.deleted == []  # no Daily call for a session that never had a room


async def test_a_failing_room_call_is_counted_not_raised():
    sweeper, _ = reaper(EndedButHeld("e" * 24), RecordingRooms(fail=True))
    assert (await sweeper.sweep())["ended_session_failed"] == 1


async def test_two_replicas_sweeping_at_once_stop_each_machine_once(machines):
    pid = await launch(machines, "f" * 24)
    one, _ = reaper(machines, now_offset=10_000)
    two, _ = reaper(machines, now_offset=10_000)
    results = await asyncio.gather(one.sweep(), two.sweep())
    assert sum(r["overdue"] for r in results) >= 1
    assert not any("failed" in key for r in results for key in r)
    assert not pid_alive(pid)


async def test_a_room_without_a_machine_is_ended_once_past_the_grace(machines):
    rooms = RecordingRooms(existing={"h" * 24: time.time() - 31, "i" * 24: time.time() - 5})
    sweeper, metrics = reaper(machines, rooms)
    assert (await sweeper.sweep())["orphan_room"] == 1
    assert rooms.deleted == ["h" * 24]  # the young one may belong to a start in progress
    assert 'outcome="orphan_room"' in metrics.render({}).decode()


async def test_the_room_of_an_active_session_is_kept(machines):
    await launch(machines, "j" * 24)
    rooms = RecordingRooms(existing={"j" * 24: time.time() - 3600})
    sweeper, _ = reaper(machines, rooms)
    assert await sweeper.sweep() == {}
    assert rooms.deleted == []
