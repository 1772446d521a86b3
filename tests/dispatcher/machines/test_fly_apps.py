"""Fly creates spread over several apps (`FLY_APPS`): each session's machine in its own app, found,
stopped and proven from any replica, and a bot's Machine token accepted only from the deployment's
apps and, where this replica created the machine, from that machine's own app."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.base import MachinesError, MachineState
from dispatcher.machines.fly.identity import FlyMachineIdentity
from dispatcher.machines.fly.provider import FlyMachines, FlySettings, machine_name
from dispatcher.machines.fly.reserve import FlyWarmMachines
from dispatcher.settings import SettingsError
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.fly import CHANNEL_AUDIENCE, FakeFly
from tests.fakes.server import serve

APPS = ("voicefleet-bots", "voicefleet-bots-2", "voicefleet-bots-3")


@pytest.fixture
def fly() -> Iterator[FakeFly]:
    with serve(FakeFly(other_apps=APPS[1:])) as fake:
        yield fake


def provider(fly: FakeFly) -> FlyMachines:
    # A replica that did not create a machine lists every app to find it: not what is timed here.
    return FlyMachines(FlySettings.from_env({**fly.env, "FLY_LIST_RATE": "100", "FLY_LIST_BURST": "100",
                                             "FLY_CREATE_RATE": "100", "FLY_CREATE_BURST": "100"}),
                       LocalCoordination())


async def test_each_sessions_machine_is_created_in_its_app_and_found_from_another_replica(fly: FakeFly) -> None:
    fly.create_per_second, fly.create_burst = 100, 100  # the create limit is tested below, apart from timing
    # Finding 9 machines from a replica that did not create them lists every app 9 times: the list
    # limit is tested in test_fly_lists.py, not here.
    fly.list_per_second, fly.list_burst = 100, 100
    here, there = provider(fly), provider(fly)  # two replicas, each with its own memory
    try:
        sessions = [f"s-{n:02d}" for n in range(9)]
        for session_id in sessions:
            await here.launch(spec(session_id))
        apps = {session_id: fly.by_name(machine_name(session_id))["_app"] for session_id in sessions}
        assert set(apps.values()) == set(APPS), apps  # spread over every app
        assert all(apps[s] == here.creates.app_of(s) for s in sessions)
        replay = await here.launch(spec(sessions[0]))  # the same key: its app again, its machine found
        assert not replay.created
        for session_id in sessions:
            found = await there.status(session_id)
            assert found is not None and found.state is MachineState.STARTING
        assert {m.session_id for m in await there.list()} == set(sessions)
        assert await there.stop(sessions[1])
        [stopped] = [m for m in fly.machines.values() if m["name"] == machine_name(sessions[1])]
        assert stopped["state"] == "destroyed" and stopped["_app"] == apps[sessions[1]]
    finally:
        await here.aclose()
        await there.aclose()


async def test_a_bots_token_is_accepted_from_the_deployments_apps_only(fly: FakeFly) -> None:
    machines = provider(fly)
    try:
        session_id = next(s for s in (f"s-{n}" for n in range(50)) if machines.creates.app_of(s) == APPS[1])
        await machines.launch(spec(session_id))
        machine = fly.by_name(machine_name(session_id))
        fly.set_state(machine["name"], "started")
        grant = BotGrant("session", session_id, int(time.time()) + 600)
        hello = Hello(machine_id=session_id, identity=fly.oidc_token(machine["id"], CHANNEL_AUDIENCE))
        assert await machines.identity.refusal(grant, hello) is None  # another configured app: accepted

        def identity(apps: tuple[str, ...], known_app: str | None) -> FlyMachineIdentity:
            return FlyMachineIdentity(issuer=fly.issuer, apps=apps, audience=CHANNEL_AUDIENCE, jwks_url=None,
                                      names=machines.name_for, known_id=lambda g: None, known_app=lambda g: known_app,
                                      verified=lambda g, machine_id, app: None)

        elsewhere = identity(APPS[:1], None)  # a deployment whose apps do not include the machine's
        assert "not one of voicefleet-bots" in str(await elsewhere.refusal(grant, hello))
        other_app = identity(APPS, APPS[2])  # created here in another app: this token is not its machine's
        assert "app_name" in str(await other_app.refusal(grant, hello))
        await elsewhere.aclose()
        await other_app.aclose()
    finally:
        await machines.aclose()


def test_fly_apps_are_fly_app_and_the_listed_ones(fly: FakeFly) -> None:
    assert FlySettings.from_env({**fly.env, "FLY_APPS": "voicefleet-bots-2,voicefleet-bots"}).apps == APPS[:2]
    with pytest.raises(SettingsError, match="not a Fly app name"):
        FlySettings.from_env({**fly.env, "FLY_APPS": "voicefleet-bots,Bad App"})
    assert FlySettings.from_env({**fly.env, "FLY_APPS": ""}).apps == ()  # FLY_APP's alone


async def test_reserve_machines_take_spare_creates_from_every_app_and_leave_each_one_for_a_cold_start(
    fly: FakeFly,
) -> None:
    fly.create_per_second = 0.01  # no token comes back during the test
    env = {**fly.env, "FLY_CREATE_RATE": "0.01", "FLY_CREATE_MAX_WAIT": "0"}
    machines = FlyWarmMachines(FlySettings.from_env(env), LocalCoordination(), channel_url="ws://10.0.0.2/bots/channel")
    try:
        granted = 0
        while (await machines.creates.refill()).granted:  # as the reserve does before each launch
            await machines.launch_idle(f"bot-{granted}")
            granted += 1
        assert granted == 2 * len(APPS)  # each app's burst of 3 less the one kept for a cold start
        assert Counter(m["_app"] for m in fly.machines.values()) == dict.fromkeys(APPS, 2)
        for app in APPS:  # that one: a cold start in every app still launches at once
            session_id = next(s for s in (f"s-{n}" for n in range(100)) if machines.creates.app_of(s) == app)
            await machines.launch(spec(session_id))
        assert fly.refused_creates == 0
        with pytest.raises(MachinesError, match="fly_rate_limited|create limit is spent"):  # none left to wait for
            await machines.launch_idle("one-too-many")
    finally:
        await machines.aclose()


class CountedLists(FakeFly):
    """Fly, counting its list calls (1/s per app at Fly: what a claim in a burst must not wait on)."""

    def __init__(self, other_apps: tuple[str, ...]) -> None:
        super().__init__(other_apps=other_apps)
        self.lists = 0

    async def list_machines(self, request):  # type: ignore[no-untyped-def]
        self.lists += 1
        return await super().list_machines(request)


async def test_a_reserve_bot_proved_by_its_hello_is_claimed_at_another_replica_without_a_list() -> None:
    """The replica a bot dialled did not create its machine: the hello's Machine token (signed by Fly
    for that machine) names its id and app, so the claim's re-tags and the session's look-ups go
    straight to it instead of listing up to every app for it."""
    with serve(CountedLists(other_apps=APPS[1:])) as counted:
        counted.create_per_second, counted.create_burst = 100, 100
        launcher = FlyWarmMachines(FlySettings.from_env(counted.env), LocalCoordination(), channel_url="ws://x")
        holder = FlyWarmMachines(FlySettings.from_env(counted.env), LocalCoordination(), channel_url="ws://x")
        try:
            for n in range(len(APPS)):  # one in each app, so the holder cannot guess the first
                await launcher.launch_idle(f"b{n}")
            for n in range(len(APPS)):
                machine = counted.by_name(f"vf-idle-b{n}")
                counted.set_state(machine["name"], "started")
                grant = BotGrant("idle", f"b{n}", int(time.time()) + 600)
                hello = Hello(machine_id=f"b{n}", identity=counted.oidc_token(machine["id"], CHANNEL_AUDIENCE))
                assert await holder.identity.refusal(grant, hello) is None
            before = counted.lists
            for n in range(len(APPS)):
                session = spec(f"s-{n}")
                adopted = await holder.adopt(f"b{n}", session)
                assert adopted.machine.machine_id == counted.by_name(f"vf-idle-b{n}")["id"]
                assert (await holder.status(session.session_id)) is not None
            assert counted.lists == before  # no list: every call went to the machine's own app
            assert {counted.by_name(f"vf-idle-b{n}")["config"]["metadata"]["voicefleet_session"]
                    for n in range(len(APPS))} == {f"s-{n}" for n in range(len(APPS))}
        finally:
            await launcher.aclose()
            await holder.aclose()


async def test_each_app_is_a_cell_shown_with_its_launches_and_running_machines(fly: FakeFly) -> None:
    machines = provider(fly)
    try:
        homes = [next(s for s in (f"s-{i}" for i in range(500)) if machines.cells.home(s) == app) for app in APPS[:2]]
        for session in homes:
            await machines.launch(spec(session))
        await machines.list()
        views = {view.name: view for view in machines.cells.views()}
        assert [views[app].running for app in APPS] == [1, 1, 0]
        assert [views[app].launches_per_second for app in APPS] == [0.1, 0.1, 0]
        assert all(view.drained_until is None and view.room is None for view in views.values())
    finally:
        await machines.aclose()
