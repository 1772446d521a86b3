"""The reaper retries what failed and remembers what it finished, on an in-memory provider
whose calls can fail on demand (no processes, no clock: the reaper's clock is injected)."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.channel.access import ChannelAccess
from dispatcher.channel.identity import Unverified
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine, MachineState
from dispatcher.observability.metrics import Metrics
from dispatcher.sessions import reaper as reaper_module
from dispatcher.sessions.reaper import Reaper, ReaperSettings
from tests.dispatcher.sessions.test_reaper import RecordingRooms


class ListedMachines:
    """A provider that lists the machines it is given and records (or fails) stops."""

    name = "memory"
    identity = Unverified("a test provider: no machine says hello")

    def __init__(self, machines: list[Machine]) -> None:
        self.machines = machines
        self.stops: list[str] = []
        self.failing: set[str] = set()

    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        raise NotImplementedError

    async def wait_started(self, session_id: str, timeout: float) -> Machine:
        raise NotImplementedError

    async def status(self, session_id: str) -> Machine | None:
        return next((m for m in self.machines if m.session_id == session_id), None)

    async def stop(self, session_id: str) -> bool:
        self.stops.append(session_id)
        if session_id in self.failing:
            raise RuntimeError("provider refused the delete")
        return any(m.session_id == session_id for m in self.machines)

    async def list(self) -> list[Machine]:
        return list(self.machines)

    async def aclose(self) -> None: ...

    def attach_channel(self, access: ChannelAccess) -> None: ...


def ended(session_id: str) -> Machine:
    return Machine(session_id=session_id, machine_id=f"m-{session_id}", state=MachineState.ENDED, created_at=1000.0)


def reaper_for(machines: ListedMachines, rooms: RecordingRooms) -> Reaper:
    return Reaper(machines, rooms, Metrics("memory"), max_session_seconds=60,
                  settings=ReaperSettings(grace_seconds=0), clock=lambda: 1010.0)


async def test_an_ended_machine_whose_delete_failed_is_retried_on_the_next_sweep() -> None:
    machines, rooms = ListedMachines([ended("a")]), RecordingRooms()
    reaper = reaper_for(machines, rooms)
    machines.failing = {"a"}
    first = await reaper.sweep()
    assert first["ended_session_failed"] == 1
    assert rooms.deleted == ["a"]  # the room could be ended; the machine could not be removed
    machines.failing = set()
    second = await reaper.sweep()
    assert second["ended_session"] == 1
    assert machines.stops == ["a", "a"]
    third = await reaper.sweep()  # done: remembered, not cleaned again
    assert not third and machines.stops == ["a", "a"]


async def test_an_ended_machine_whose_room_could_not_be_ended_is_retried() -> None:
    machines, rooms = ListedMachines([ended("b")]), RecordingRooms(fail=True)
    reaper = reaper_for(machines, rooms)
    assert (await reaper.sweep())["ended_session_failed"] == 1
    rooms.fail = False
    assert (await reaper.sweep())["ended_session"] == 1
    assert rooms.deleted == ["b"]


async def test_the_memory_of_cleaned_sessions_forgets_the_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reaper_module, "REMEMBERED_ENDED_SESSIONS", 2)
    machines, rooms = ListedMachines([ended("1"), ended("2"), ended("3")]), RecordingRooms()
    reaper = reaper_for(machines, rooms)
    await reaper.sweep()  # cleans 1, 2, 3; remembers only the latest two: 2 and 3
    machines.stops.clear()
    machines.machines = [ended("2"), ended("3")]  # what a provider still lists a while later
    await reaper.sweep()
    assert machines.stops == []  # the most recently cleaned are the ones remembered
    machines.machines = [ended("1")]
    await reaper.sweep()
    assert machines.stops == ["1"]  # the forgotten one is cleaned again, which is harmless


async def test_a_sweep_that_raises_is_logged_and_the_reaper_keeps_going(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    machines, rooms = ListedMachines([]), RecordingRooms()
    reaper = Reaper(machines, rooms, Metrics("memory"), max_session_seconds=60,
                    settings=ReaperSettings(interval_seconds=0.001, jitter=0.0))
    sweeps = 0

    async def broken_sweep() -> None:
        nonlocal sweeps
        sweeps += 1
        if sweeps == 1:
            raise RuntimeError("a bug in the sweep")
        raise asyncio.CancelledError  # the second sweep ends the loop, as a shutdown would

    monkeypatch.setattr(reaper, "sweep", broken_sweep)
    with pytest.raises(asyncio.CancelledError):
        await reaper.run()
    assert sweeps == 2  # kept sweeping after the failure
    assert "reaper: sweep failed" in caplog.text and "a bug in the sweep" in caplog.text


async def test_the_reaper_waits_a_jittered_interval_before_each_sweep() -> None:
    events: list[float | str] = []

    class SweptMachines(ListedMachines):
        async def list(self) -> list[Machine]:
            events.append("sweep")  # each sweep starts by listing
            return await super().list()

    async def sleep(seconds: float) -> None:
        if len(events) == 6:
            raise asyncio.CancelledError  # a shutdown, during the fourth wait
        events.append(seconds)

    machines = SweptMachines([ended("w")])
    reaper = Reaper(machines, RecordingRooms(), Metrics("memory"), max_session_seconds=60,
                    settings=ReaperSettings(interval_seconds=60, jitter=0.2), clock=lambda: 1010.0, sleep=sleep)
    with pytest.raises(asyncio.CancelledError):
        await reaper.run()
    assert events[1::2] == ["sweep"] * 3  # a wait first, and never two sweeps without one between
    assert all(isinstance(wait, float) and 48 <= wait <= 72 for wait in events[0::2])  # 60 s ± 20 %
    assert machines.stops == ["w"]  # swept for real: the ended machine was cleaned, once


async def test_an_orphan_room_a_lagging_list_still_shows_is_ended_once() -> None:
    class LaggingRooms(RecordingRooms):
        async def delete(self, session_id: str) -> None:
            self.deleted.append(session_id)  # ended, but the room list has not caught up yet

    rooms = LaggingRooms(existing={"orphan": 1000.0})
    reaper = Reaper(ListedMachines([]), rooms, Metrics("memory"), max_session_seconds=60,
                    settings=ReaperSettings(grace_seconds=5), clock=lambda: 1010.0)
    assert (await reaper.sweep())["orphan_room"] == 1
    assert not await reaper.sweep()
    assert rooms.deleted == ["orphan"]


async def test_a_sweep_whose_listings_fail_says_so_in_its_result_and_its_metrics() -> None:
    class Unlisted(ListedMachines):
        async def list(self) -> list[Machine]:
            raise RuntimeError("provider list failed")

    class UnlistedRooms(RecordingRooms):
        async def list_sessions(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("rooms list failed")

    metrics = Metrics("memory")
    machines_down = Reaper(Unlisted([]), RecordingRooms(), metrics, max_session_seconds=60,
                           settings=ReaperSettings(), clock=lambda: 1010.0)
    assert await machines_down.sweep() == {"list_failed": 1}
    rooms_down = Reaper(ListedMachines([]), UnlistedRooms(), metrics, max_session_seconds=60,
                        settings=ReaperSettings(), clock=lambda: 1010.0)
    assert await rooms_down.sweep() == {"list_rooms_failed": 1}
    shown = metrics.render({}).decode()
    for outcome in ("list_failed", "list_rooms_failed"):
        assert f'voicefleet_reaped_total{{outcome="{outcome}",provider="memory"}} 1.0' in shown


async def test_a_machine_is_overdue_only_past_its_max_session_plus_grace() -> None:
    def running(session_id: str, created_at: float) -> Machine:
        return Machine(session_id=session_id, machine_id=f"m-{session_id}", state=MachineState.STARTED,
                       created_at=created_at)

    machines = ListedMachines([running("on-time", 1000.0), running("late", 999.0)])
    reaper = Reaper(machines, RecordingRooms(), Metrics("memory"), max_session_seconds=50,
                    settings=ReaperSettings(grace_seconds=10), clock=lambda: 1060.0)
    assert await reaper.sweep() == {"overdue": 1}
    assert machines.stops == ["late"]  # 61 s old; "on-time" is exactly 50 + 10 s old: not yet


async def test_an_ended_webrtc_session_is_cleaned_once_without_a_room_call() -> None:
    webrtc = Machine(session_id="p2p", machine_id="m-p2p", state=MachineState.ENDED, created_at=1000.0,
                     transport="webrtc")
    machines, rooms = ListedMachines([webrtc]), RecordingRooms()
    reaper = reaper_for(machines, rooms)
    assert await reaper.sweep() == {"ended_session": 1}  # it never had a room: nothing failed
    assert not await reaper.sweep()  # done, remembered
    assert (machines.stops, rooms.deleted) == (["p2p"], [])


async def test_an_orphan_room_is_ended_only_once_older_than_the_grace() -> None:
    rooms = RecordingRooms(existing={"at-grace": 1000.0, "past-grace": 999.0})
    reaper = Reaper(ListedMachines([]), rooms, Metrics("memory"), max_session_seconds=60,
                    settings=ReaperSettings(grace_seconds=10), clock=lambda: 1010.0)
    assert await reaper.sweep() == {"orphan_room": 1}
    assert rooms.deleted == ["past-grace"]  # exactly 10 s old may still be a start in progress


async def test_every_ended_machine_a_sweep_lists_is_told_as_an_end_and_a_live_one_is_not() -> None:
    live = Machine(session_id="b", machine_id="m-b", state=MachineState.STARTED, created_at=1005.0)
    failed = Machine(session_id="c", machine_id="m-c", state=MachineState.FAILED, created_at=1000.0,
                     detail="CannotPullContainerError")
    machines, told = ListedMachines([ended("a"), live, failed]), []
    reaper = Reaper(machines, RecordingRooms(), Metrics("memory"), max_session_seconds=60,
                    settings=ReaperSettings(grace_seconds=0), clock=lambda: 1010.0, ended=told.append)
    await reaper.sweep()
    assert [(m.session_id, m.state, m.detail) for m in told] == [
        ("a", MachineState.ENDED, None), ("c", MachineState.FAILED, "CannotPullContainerError")]
