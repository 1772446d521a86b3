"""Two dispatcher replicas sharing a store (a real redis-server), every request routed to a
random one: one bot per session, and signalling and status reach the right bot (docs/replicas.md).

Each replica launches and holds its own bots (real stand-in processes dialling *that* replica's
channel, as a cloud bot dials the replica that launched it); the deployment has one warm reserve,
planned by the replica holding the planning lease and claimed by either; a request for a bot held
by the other replica finds it through the session's owner record and the store's relay. The
provider's shared record is played by `SharedRecord`: status, stop and list
see every replica's machines, as Fly's or ECS's API would; launches stay the caller's. Routing is
a seeded random choice, so a failure replays.
"""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.support.dispatcher_server import serving
from tests.support.processes import pid_alive
from tests.support.redis_server import redis_server
from tests.support.waiting import until

TOKEN = "r" * 40
WAIT = 60.0
# Both replicas, their bots' channels and this test share one process on a machine that may be busy:
# a store reply can wait seconds for the loop, and each replica would then decide alone (and a keyed
# start answer 503) as it must when the store does not answer; and a heartbeat a few seconds late
# would let a short lease run out. Neither is what this test checks.
STORE = {"REDIS_TIMEOUT_SECONDS": "30", "REDIS_LEASE_SECONDS": "60"}


class SharedRecord(LocalMachines):
    """This replica's own bots, plus a provider-wide view of every replica's machines."""

    def __init__(self, everyone: list[SharedRecord]) -> None:
        super().__init__(LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=2, bot_env=STANDIN_ENV))
        self.everyone = everyone
        everyone.append(self)

    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        for replica in self.everyone:  # the provider's idempotency (a Fly name, an ECS clientToken)
            if replica is not self and (machine := await LocalMachines.status(replica, spec.session_id)):
                return LaunchResult(machine, created=False)
        return await super().launch(spec)

    async def status(self, session_id: str) -> Machine | None:
        for replica in self.everyone:
            if (machine := await LocalMachines.status(replica, session_id)) is not None:
                return machine
        return None

    async def wait_started(self, session_id: str, timeout: float) -> Machine:
        for replica in self.everyone:
            if session_id in replica._bots:
                return await LocalMachines.wait_started(replica, session_id, timeout)
        return await super().wait_started(session_id, timeout)

    async def stop(self, session_id: str) -> bool:
        return any([await LocalMachines.stop(replica, session_id) for replica in self.everyone])

    async def list(self) -> list[Machine]:
        return [m for replica in self.everyone for m in await LocalMachines.list(replica)]

    def pid_of(self, session_id: str) -> int | None:
        bot = self._bots.get(session_id)
        return bot.pid if bot else None


@pytest.fixture
async def replicas(monkeypatch, tmp_path):
    monkeypatch.setenv("STANDIN_SIGN_ANSWERS", "1")
    everyone: list[SharedRecord] = []
    apps, clients, servers = [], [], []
    with redis_server(tmp_path) as store:
        for name in ("r-a", "r-b"):
            env = {"RESERVE_MIN_IDLE": "1", "RESERVE_BUFFER": "0", "RESERVE_BURST": "0",
                   **store.env, "REPLICA_ID": name, **STORE}
            app = create_app(Settings(bot_channel_token=TOKEN, max_concurrent_sessions=50), env=env,
                             machines=SharedRecord(everyone), rooms=None)
            apps.append(app)
            clients.append(httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"))
        for app in apps:
            server = serving(app)
            await server.__aenter__()
            servers.append(server)
            replication = app.state.voicefleet.replication
            await replication.start()  # the app's lifespan does this; `serving` runs none
            assert await replication.coordination.relay.wait_subscribed(WAIT)
        yield apps, clients, everyone
        for app, client, server in zip(apps, clients, servers, strict=True):
            await client.aclose()
            await app.state.voicefleet.aclose()
            await server.__aexit__(None, None, None)


async def test_two_replicas_with_random_routing_give_one_bot_per_session_and_reach_it(replicas):
    apps, clients, everyone = replicas
    pick = random.Random(9).choice
    for app in apps:  # the one that takes the planning lease launches the deployment's one idle bot
        await app.state.voicefleet.reserve.refill()
    await until(lambda: sum(len(app.state.voicefleet.channels.idle()) for app in apps) == 1,
                "the deployment's one idle bot", timeout=WAIT)

    # A burst larger than the reserve, each start at a random replica.
    answers = await asyncio.gather(*(pick(clients).post("/start?wait=started", json={"body": {"n": n}})
                                     for n in range(5)))
    assert [a.status_code for a in answers] == [201] * 5
    sessions = [a.json()["session_id"] for a in answers]
    owners = {s: [r for r in everyone if r.pid_of(s) is not None] for s in sessions}
    assert all(len(owner) == 1 for owner in owners.values()), "a session has bots at two replicas"
    pids = {s: owners[s][0].pid_of(s) for s in sessions}
    assert len(set(pids.values())) == 5, "a bot serves two sessions"

    # A retry of a keyed start at the other replica finds the same session.
    keyed = await clients[0].post("/start?wait=started", json={}, headers={"Idempotency-Key": "k-1"})
    replay = await clients[1].post("/start", json={}, headers={"Idempotency-Key": "k-1"})
    assert (keyed.status_code, replay.status_code) == (201, 200)
    assert replay.json()["session_id"] == keyed.json()["session_id"]

    # Signalling and status, each at a random replica, reach the session's own bot.
    for session_id in sessions:
        offer = await pick(clients).post(f"/sessions/{session_id}/api/offer", json={"sdp": "v=0", "type": "offer"})
        assert offer.status_code == 200, offer.text
        assert offer.json()["bot"] == f"{session_id}/{pids[session_id]}"
        status = await pick(clients).get(f"/sessions/{session_id}")
        assert status.json()["status"] == "started"

    # A stop at a random replica ends the right bot.
    for session_id in sessions:
        assert (await pick(clients).delete(f"/sessions/{session_id}")).status_code in (202, 204)
        assert not pid_alive(pids[session_id])
