"""What the Fly provider sends to the Machines API, and Fly-specific behaviour."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from bench.fly_cpu_quota import BOT_CPU_OURS, BOT_CPU_TELEPHONY, Size, smallest_within, verdict
from dispatcher.machines.base import MachineState, WaitTimeout
from dispatcher.machines.fly.provider import WAIT_SLICE, FlyMachines, FlySettings, to_machine
from dispatcher.settings import SettingsError
from tests.dispatcher.machines.harness import fly_harness
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.fly import FakeFly
from tests.support.unclosed import unclosed_reports
from tests.support.waiting import until


@pytest.fixture
async def fly(fake_fly: FakeFly):  # type: ignore[no-untyped-def]
    provider = fly_harness(fake_fly).make(FLY_GUEST_CPU_KIND="performance", FLY_GUEST_CPUS="2",
                                          FLY_GUEST_MEMORY_MB="4096", FLY_REGION="iad")
    yield provider
    await provider.aclose()


async def test_create_asks_for_the_image_size_and_region(fly: FlyMachines, fake_fly: FakeFly) -> None:
    await fly.launch(spec())
    body = fake_fly.calls_to("POST", "/machines")[0].json()
    assert body["config"]["image"].startswith("registry.fly.io/voicefleet-bots@sha256:")
    assert body["config"]["guest"] == {"cpu_kind": "performance", "cpus": 2, "memory_mb": 4096}
    assert body["region"] == "iad"


async def test_machine_destroys_itself_and_never_restarts(fly: FlyMachines, fake_fly: FakeFly) -> None:
    await fly.launch(spec())
    config = fake_fly.calls_to("POST", "/machines")[0].json()["config"]
    assert config["auto_destroy"] is True
    assert config["restart"] == {"policy": "no"}


async def test_the_bot_token_travels_in_env_and_nowhere_else(fly: FlyMachines, fake_fly: FakeFly) -> None:
    s = spec()
    await fly.launch(s)
    await fly.status(s.session_id)
    body = fake_fly.calls_to("POST", "/machines")[0].json()
    env = body["config"].pop("env")
    assert env["DAILY_TOKEN"] == "bot.jwt.secret"
    assert env["DAILY_ROOM_URL"] == s.room_url
    # Not in a command (`init`, `processes[].cmd`), metadata or anything else Fly shows around.
    assert "bot.jwt.secret" not in json.dumps(body)
    assert all("bot.jwt.secret" not in c.path + str(c.query) for c in fake_fly.calls)


async def test_metadata_names_the_session_and_body_digest(fly: FlyMachines, fake_fly: FakeFly) -> None:
    s = spec()
    await fly.launch(s)
    metadata = fake_fly.calls_to("POST", "/machines")[0].json()["config"]["metadata"]
    assert metadata["voicefleet_session"] == s.session_id
    assert metadata["voicefleet_body_digest"] == s.body_digest
    assert fake_fly.calls_to("POST", "/machines")[0].json()["name"] == f"vf-{s.session_id}"


async def test_wait_asks_fly_to_block_and_survives_its_408(fly: FlyMachines, fake_fly: FakeFly) -> None:
    s = spec()
    await fly.launch(s)
    with pytest.raises(WaitTimeout):
        await fly.wait_started(s.session_id, timeout=1.5)
    waits = fake_fly.calls_to("GET", "/wait")
    # Fly does the waiting (answering 408 when its wait passes), in whole seconds and never
    # asked for longer than the caller has left: 1 s (the half second left rounds up to Fly's
    # 1 s minimum). How many waits fit before the deadline depends on the machine's load.
    assert waits and all(w.query == {"state": "started", "timeout": "1"} for w in waits)


async def test_waiting_on_a_machine_just_launched_costs_one_wait_and_no_status_read(
    fly: FlyMachines, fake_fly: FakeFly
) -> None:
    s = spec()
    launched = (await fly.launch(s)).machine
    fake_fly.boot_after = 0.0  # Fly boots it: its /wait answers 200
    machine = await fly.wait_started(s.session_id, timeout=5)
    assert machine.state is MachineState.STARTED
    assert (machine.machine_id, machine.created_at) == (launched.machine_id, launched.created_at)
    assert len(fake_fly.calls_to("GET", "/wait")) == 1
    assert [c.path for c in fake_fly.calls if c.method == "GET" and "/wait" not in c.path] == []


async def test_a_machine_that_ends_while_waited_on_is_read_again_after_fly_s_408(
    fly: FlyMachines, fake_fly: FakeFly
) -> None:
    s = spec()
    await fly.launch(s)
    fake_fly.set_state(f"vf-{s.session_id}", "stopped", exit_code=3)  # it never reaches `started`
    machine = await fly.wait_started(s.session_id, timeout=5)
    assert machine.state is MachineState.FAILED


async def test_stopping_a_machine_that_never_booted_destroys_it(fly: FlyMachines, fake_fly: FakeFly) -> None:
    s = spec()
    await fly.launch(s)
    assert await fly.stop(s.session_id) is True
    delete = fake_fly.calls_to("DELETE", "/machines/")[0]
    assert delete.query == {"force": "true"}
    machine = await fly.status(s.session_id)
    assert machine is not None and machine.state is MachineState.ENDED


async def test_create_rate_limit_refuses_beyond_the_burst(fake_fly: FakeFly) -> None:
    provider = fly_harness(fake_fly).make(FLY_CREATE_RATE="1", FLY_CREATE_BURST="3", FLY_CREATE_MAX_WAIT="0")
    for _ in range(3):
        await provider.launch(spec())
    with pytest.raises(Exception) as caught:
        await provider.launch(spec())
    await provider.aclose()
    assert getattr(caught.value, "reason", None) == "fly_rate_limited"
    assert len(fake_fly.calls_to("POST", "/machines")) == 3


async def test_the_fake_answers_429_to_lists_past_flys_app_wide_burst(fake_fly: FakeFly) -> None:
    # Fly allows 1 list/s per app, burst 3: the fake is never more lenient than the real API.
    fake_fly.list_per_second = 0.01  # no token comes back during the test
    provider = fly_harness(fake_fly).make(FLY_LIST_RATE="100", FLY_LIST_BURST="100")  # nothing held back here
    for _ in range(3):
        await provider.list()
    with pytest.raises(Exception) as caught:
        await provider.list()
    await provider.aclose()
    assert getattr(caught.value, "reason", None) == "fly_throttled"
    assert fake_fly.refused_lists >= 1 and len(fake_fly.list_times) == 3


def test_settings_name_the_missing_variable() -> None:
    with pytest.raises(SettingsError, match="FLY_APP"):
        FlySettings.from_env({"FLY_API_TOKEN": "t", "BOT_IMAGE": "i"})


def test_settings_refuse_memory_fly_cannot_give() -> None:
    with pytest.raises(SettingsError, match="FLY_GUEST_MEMORY_MB"):
        FlySettings.from_env({"FLY_API_TOKEN": "t", "FLY_APP": "a", "BOT_IMAGE": "i", "FLY_GUEST_MEMORY_MB": "1000"})


def test_settings_never_show_the_api_token() -> None:
    settings = FlySettings.from_env({"FLY_API_TOKEN": "fo1_secret", "FLY_APP": "a", "BOT_IMAGE": "i"})
    assert "fo1_secret" not in repr(settings)


async def test_another_replica_finds_a_destroyed_machine_so_a_replay_launches_nothing(
    fly: FlyMachines, fake_fly: FakeFly
) -> None:
    s = spec()
    await fly.launch(s)
    fake_fly.set_state(f"vf-{s.session_id}", "destroyed")
    replica = fly_harness(fake_fly).make()  # knows no machine id: finds it by metadata
    try:
        found = await replica.status(s.session_id)
    finally:
        await replica.aclose()
    assert found is not None and found.state is MachineState.ENDED


async def test_a_live_machine_wins_over_a_destroyed_one_of_the_same_session(
    fly: FlyMachines, fake_fly: FakeFly
) -> None:
    s = spec()
    first = (await fly.launch(s)).machine
    fake_fly.set_state(f"vf-{s.session_id}", "destroyed")
    fly._ids.clear()  # as a replica that never saw either
    second = (await fly.launch(s)).machine  # the name is free again: a new machine
    found = await fly.status(s.session_id)
    assert found is not None and found.machine_id == second.machine_id != first.machine_id
    assert found.state.is_active


async def test_list_holds_only_this_deployments_machines(fly: FlyMachines, fake_fly: FakeFly) -> None:
    s = spec()
    await fly.launch(s)
    fake_fly.machines["foreign"] = {  # another process's machine in the same app
        "id": "foreign", "name": "web-1", "state": "started", "config": {"metadata": {"role": "web"}},
        "events": [], "created_at": "2026-01-01T00:00:00Z",
    }
    assert [m.session_id for m in await fly.list()] == [s.session_id]


async def test_stopping_a_machine_that_vanished_meanwhile_is_success(fly: FlyMachines, fake_fly: FakeFly) -> None:
    s = spec()
    await fly.launch(s)
    fake_fly.set_state(f"vf-{s.session_id}", "started")
    fake_fly.fail(404, method="POST", path_suffix="/stop", body={"error": "machine not found"})
    assert await fly.stop(s.session_id) is True


async def test_a_long_wait_asks_fly_in_short_waits_and_a_machine_that_starts_meanwhile_costs_one(
        fly: FlyMachines, fake_fly: FakeFly) -> None:
    s = spec()
    await fly.launch(s)
    fake_fly.boot_after = 0.2  # it starts while Fly waits
    machine = await fly.wait_started(s.session_id, timeout=300)
    assert machine.state is MachineState.STARTED
    assert [w.query["timeout"] for w in fake_fly.calls_to("GET", "/wait")] == [str(WAIT_SLICE)]


async def test_a_machine_slow_to_boot_is_waited_on_in_ever_longer_waits(fly: FlyMachines, fake_fly: FakeFly) -> None:
    """Only the first wait is short (a machine that fails at boot is noticed within it): each later one
    is twice as long, so a machine stuck in `created` costs a few `/wait` calls, not one every 2 s."""
    s = spec()
    await fly.launch(s)
    with pytest.raises(WaitTimeout):
        await fly.wait_started(s.session_id, timeout=9)
    timeouts = [w.query["timeout"] for w in fake_fly.calls_to("GET", "/wait")]
    assert timeouts[:2] == [str(WAIT_SLICE), str(2 * WAIT_SLICE)] and len(timeouts) <= 4, timeouts


async def test_five_replicas_waiting_on_one_slow_machine_are_not_throttled(fake_fly: FakeFly) -> None:
    """A machine stuck in `created` (Fly: seen for hours) waited on by five replicas for 8 s (a start's
    `?wait=started` at one, long-polls and event streams at others): Fly allows 1 `/wait` a second per
    machine (burst 3) for all of them. Each wait ends in WaitTimeout, the start's own deadline, none in
    `fly_throttled` (a start refused while its machine is merely slow to boot)."""
    harness = fly_harness(fake_fly)
    replicas = [harness.make(FLY_RETRY_DEADLINE_SECONDS="10") for _ in range(5)]  # the default deadline
    s = spec()
    try:
        await replicas[0].launch(s)
        results = await asyncio.gather(*(r.wait_started(s.session_id, 8.0) for r in replicas),
                                       return_exceptions=True)
    finally:
        for r in replicas:
            await r.aclose()
    assert all(isinstance(r, WaitTimeout) for r in results), results


@pytest.mark.parametrize(("fly_state", "code", "reason"), [("stopped", 3, "exit code 3"),
                                                            ("failed", None, "fly state failed")])
async def test_a_machine_that_fails_while_waited_on_ends_the_start_at_once_with_its_own_reason(
        fly: FlyMachines, fake_fly: FakeFly, fly_state: str, code: int | None, reason: str) -> None:
    # Fly's `/wait?state=started` answers only `started` or its timeout: a machine that can never
    # start must not hold the start for the whole of it (60 s here, Fly's maximum for one wait).
    s = spec()
    await fly.launch(s)
    waiting = asyncio.create_task(fly.wait_started(s.session_id, timeout=60))
    await until(lambda: fake_fly.calls_to("GET", "/wait"), "a wait at Fly")  # the failure comes while Fly holds it
    fake_fly.set_state(f"vf-{s.session_id}", fly_state, exit_code=code)
    machine = await asyncio.wait_for(waiting, 20)  # a third of the start's timeout, however loaded
    assert machine.state is MachineState.FAILED and machine.detail == reason
    assert all(int(w.query["timeout"]) <= WAIT_SLICE for w in fake_fly.calls_to("GET", "/wait"))


async def test_a_session_s_age_counts_from_its_launch_as_recorded_in_metadata(
    fly: FlyMachines, fake_fly: FakeFly
) -> None:
    """Not from Fly's `created_at`: a claimed reserve machine was created long before its session
    (fly/reserve.py records the claim time), and the reaper ends sessions by age."""
    s = spec()
    await fly.launch(s)
    raw = fake_fly.by_name(f"vf-{s.session_id}")
    raw["config"]["metadata"]["voicefleet_created_at"] = "1790000000"
    raw["created_at"] = "2026-01-01T00:00:00Z"
    found = await fly.status(s.session_id)
    assert found is not None and found.created_at == 1790000000.0


def test_a_machine_without_a_recorded_launch_time_is_aged_from_fly_s_created_at() -> None:
    raw = {"id": "m1", "name": "vf-x", "state": "started", "created_at": "2026-01-01T00:00:00Z",
           "config": {"metadata": {"voicefleet_session": "x"}}}
    assert to_machine(raw).created_at == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    garbled = {**raw, "config": {"metadata": {"voicefleet_session": "x", "voicefleet_created_at": "soon"}}}
    assert to_machine(garbled).created_at == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    # No readable time at all: the epoch, so the reaper takes it as past any session's deadline.
    assert to_machine({k: v for k, v in raw.items() if k != "created_at"}).created_at == 0.0


async def test_closing_the_provider_leaves_no_open_connection_pool(fake_fly: FakeFly) -> None:
    async def use_and_close() -> None:
        provider = fly_harness(fake_fly).make()
        await provider.list()  # opens the pool
        await provider.aclose()

    assert await unclosed_reports(use_and_close) == []


async def test_launches_never_waited_on_are_remembered_up_to_1024(fake_fly: FakeFly) -> None:
    """A launch remembers its machine so that `?wait=started` needs no status read; starts that
    never wait must not grow that memory without bound: the oldest is forgotten first."""
    provider = fly_harness(fake_fly).make(FLY_CREATE_RATE="100000", FLY_CREATE_BURST="100000")
    fake_fly.create_per_second, fake_fly.create_burst = 100000, 100000  # the limit is not what this tests
    try:
        first, second = spec(), spec()
        await provider.launch(first)
        await provider.launch(second)
        for done in range(0, 1023, 50):  # 1023 more: 1025 launched, none waited on
            await asyncio.gather(*(provider.launch(spec()) for _ in range(min(50, 1023 - done))))
        fake_fly.boot_after = 0.0
        second_id = fake_fly.by_name(f"vf-{second.session_id}")["id"]
        await provider.wait_started(second.session_id, timeout=30)  # still remembered: /wait only
        assert [c.path.endswith("/wait") for c in fake_fly.calls_to("GET", f"/machines/{second_id}")] == [True]
        first_id = fake_fly.by_name(f"vf-{first.session_id}")["id"]
        await provider.wait_started(first.session_id, timeout=30)  # forgotten: read again, then it runs
        assert [c.path.endswith("/wait") for c in fake_fly.calls_to("GET", f"/machines/{first_id}")] == [False]
    finally:
        await provider.aclose()


async def test_a_remembered_machine_that_aged_out_is_found_again_by_metadata(
    fly: FlyMachines, fake_fly: FakeFly
) -> None:
    """The id this replica remembers answers 404 (destroyed, aged out) while the session has a
    newer machine (another replica relaunched it): the id is forgotten and the new one found."""
    fake_fly.destroyed_ttl = 0.0
    s = spec()
    first = (await fly.launch(s)).machine
    fake_fly.set_state(f"vf-{s.session_id}", "destroyed")
    replica = fly_harness(fake_fly).make()
    try:
        second = (await replica.launch(s)).machine
    finally:
        await replica.aclose()
    for _ in range(2):
        found = await fly.status(s.session_id)
        assert found is not None and found.machine_id == second.machine_id != first.machine_id
    assert len(fake_fly.calls_to("GET", f"/machines/{first.machine_id}")) == 1  # then forgotten


async def test_stopping_a_machine_that_already_ended_is_success_without_a_call(
    fly: FlyMachines, fake_fly: FakeFly
) -> None:
    s = spec()
    await fly.launch(s)
    fake_fly.set_state(f"vf-{s.session_id}", "stopped")
    assert await fly.stop(s.session_id) is True
    assert fake_fly.calls_to("DELETE") == [] and fake_fly.calls_to("POST", "/stop") == []


async def test_a_remembered_machine_id_that_aged_out_is_asked_for_once(fly: FlyMachines, fake_fly: FakeFly) -> None:
    fake_fly.destroyed_ttl = 0.0
    s = spec()
    machine = (await fly.launch(s)).machine
    fake_fly.set_state(f"vf-{s.session_id}", "destroyed")
    assert await fly.status(s.session_id) is None
    assert await fly.status(s.session_id) is None  # by metadata now, not by the dead id again
    assert len(fake_fly.calls_to("GET", f"/machines/{machine.machine_id}")) == 1


def test_the_default_guest_keeps_a_long_call_within_flys_cpu_quota() -> None:
    """The default size is the one bench/fly_cpu_quota.py finds (docs/providers.md, "CPU"): its quota covers a
    talking bot's CPU with room to spare, where shared-cpu-1x's is spent within a minute."""
    settings = FlySettings.from_env({"FLY_API_TOKEN": "t", "FLY_APP": "a", "BOT_IMAGE": "i"})
    default = Size("default", settings.cpu_kind, settings.cpus, settings.memory_mb)
    chosen = smallest_within((BOT_CPU_OURS, BOT_CPU_TELEPHONY), 20 * 60, 1.2)
    assert (chosen.name, chosen.kind, chosen.cpus, chosen.memory_mb) == ("shared-cpu-4x", "shared", 4, 1024)
    assert (default.kind, default.cpus, default.memory_mb) == (chosen.kind, chosen.cpus, chosen.memory_mb)
    for cpu in (BOT_CPU_OURS, BOT_CPU_TELEPHONY):
        assert verdict(default, cpu, 20 * 60).within_quota and verdict(default, cpu * 1.2, 3 * 3600).within_quota
        old = verdict(Size("shared-cpu-1x", "shared", 1, 1024), cpu, 20 * 60)
        assert old.throttled_after is not None and old.throttled_after < 60


@pytest.mark.parametrize(("kind", "cpus", "memory"), [("shared", "8", "1024"), ("performance", "1", "1024")])
def test_a_guest_below_flys_least_memory_is_refused_naming_the_least(kind: str, cpus: str, memory: str) -> None:
    env = {"FLY_API_TOKEN": "t", "FLY_APP": "a", "BOT_IMAGE": "i", "FLY_GUEST_CPU_KIND": kind,
           "FLY_GUEST_CPUS": cpus, "FLY_GUEST_MEMORY_MB": memory}
    least = str(int(cpus) * (256 if kind == "shared" else 2048))
    with pytest.raises(SettingsError, match=f"FLY_GUEST_MEMORY_MB={least} or more"):
        FlySettings.from_env(env)
    assert FlySettings.from_env({**env, "FLY_GUEST_MEMORY_MB": least}).memory_mb == int(least)


async def test_a_creates_retry_takes_its_own_token_so_the_deployment_stays_within_flys_limit(
        fake_fly: FakeFly) -> None:
    """A create Fly answered 503 may have been counted, and its retry is one more create at Fly's door: it takes
    the deployment's next token too, so the launches after it are refused here rather than by Fly."""
    fake_fly.create_per_second = 0.001  # Fly's burst of 3 alone, whatever the machine's load
    provider = fly_harness(fake_fly).make(FLY_CREATE_RATE="0.001", FLY_CREATE_BURST="3", FLY_CREATE_MAX_WAIT="0")
    fake_fly.fail(503, times=1, method="POST", path_suffix="/machines")
    try:
        await provider.launch(spec())  # two creates: the 503, then its retry
        await provider.launch(spec())
        with pytest.raises(Exception) as caught:
            await provider.launch(spec())
    finally:
        await provider.aclose()
    assert getattr(caught.value, "reason", None) == "fly_rate_limited"
    assert len(fake_fly.calls_to("POST", "/machines")) == 3 and fake_fly.refused_creates == 0


async def test_a_creates_retry_with_no_token_left_gives_up_with_its_own_failure(fake_fly: FakeFly) -> None:
    fake_fly.create_per_second = 0.001
    provider = fly_harness(fake_fly).make(FLY_CREATE_RATE="0.001", FLY_CREATE_BURST="1", FLY_CREATE_MAX_WAIT="0")
    fake_fly.fail(503, times=1, method="POST", path_suffix="/machines")
    try:
        with pytest.raises(Exception) as caught:
            await provider.launch(spec())
    finally:
        await provider.aclose()
    assert getattr(caught.value, "reason", None) == "fly_unavailable"  # the 503 may have made it: looked for
    assert len(fake_fly.calls_to("POST", "/machines")) == 1
