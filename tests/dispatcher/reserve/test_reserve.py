"""The warm reserve, locally: real dispatcher app, real (stand-in) bot processes on the real channel.

Deterministic: the reserve is refilled by calling `refill()` (no background loop), and every wait
is on the channel's own condition (a bot connected or left), never a sleep.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.reserve.planner import Fleet
from dispatcher.settings import Settings
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.support.dispatcher_server import serving
from tests.support.processes import pid_alive

WAIT = 60.0  # generous: bots start on a machine shared with other test runs


class Dispatcher:
    def __init__(self, app, client: httpx.AsyncClient) -> None:
        self.app, self.client = app, client
        self.state = app.state.voicefleet
        self.reserve = self.state.reserve
        self.channels = self.state.channels
        self.machines: LocalMachines = self.state.machines

    async def fill(self, idle: int) -> list[str]:
        """Refills and waits until `idle` reserve bots are on the channel; returns their ids."""
        await self.reserve.refill()
        assert await self.channels.wait_until(lambda: len(self.channels.idle()) >= idle, WAIT), "reserve never filled"
        return [link.machine_id for link in self.channels.idle()]

    def idle_pid(self, bot_id: str) -> int:
        return self.machines._idle[bot_id].pid

    def session_pid(self, session_id: str) -> int:
        return self.machines._bots[session_id].pid

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of `name`'s series with these labels (whatever their others: each release's)."""
        text = (await self.client.get("/metrics")).text
        wanted = {f'{k}="{v}"' for k, v in labels.items()}
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name + "{") and wanted <= set(line[len(name) + 1 : line.index("}")].split(",")))


@pytest.fixture
async def make_dispatcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("STANDIN_RECORD_DIR", str(tmp_path))
    opened = []

    async def make(**env: str) -> Dispatcher:
        machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=2, bot_env=STANDIN_ENV))
        reserve_env = {"RESERVE_BUFFER": "0", "RESERVE_BURST": "0", **env}
        app = create_app(Settings(max_concurrent_sessions=50), env=reserve_env, machines=machines, rooms=None)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
        served = serving(app)
        await served.__aenter__()
        opened.append((app, client, served))
        return Dispatcher(app, client)

    yield make
    for app, client, served in opened:
        await client.aclose()
        await app.state.voicefleet.aclose()
        await served.__aexit__(None, None, None)


def assignments(record_dir: Path) -> dict[str, dict]:
    """What each stand-in bot recorded: one file per session it was assigned (or launched for)."""
    return {p.stem: json.loads(p.read_text()) for p in record_dir.glob("*.json")}


async def test_a_start_claims_an_idle_bot_that_then_serves_that_session(make_dispatcher, tmp_path):
    d = await make_dispatcher(RESERVE_MIN_IDLE="1")
    [bot_id] = await d.fill(1)
    pid = d.idle_pid(bot_id)
    response = await d.client.post("/start", json={"body": {"lang": "fr"}})
    assert response.status_code == 201, response.text
    session_id = response.json()["session_id"]
    assert response.json()["status"] == "started"  # the bot acknowledged its assignment
    assert d.session_pid(session_id) == pid
    assert assignments(tmp_path)[session_id] == {"assigned": True, "body": '{"lang":"fr"}', "pid": pid}
    offer = await d.client.post(f"/sessions/{session_id}/api/offer", json={"sdp": "v=0 warm", "type": "offer"})
    assert offer.json()["sdp"] == "answer-to:v=0 warm"  # over the channel, to that very bot
    assert await d.metric("voicefleet_reserve_claims_total", outcome="warm_hit", provider="local") == 1
    assert await d.metric("voicefleet_reserve_claims_total", outcome="cold_miss", provider="local") == 0


async def test_a_burst_larger_than_the_reserve_gives_every_session_its_own_bot(make_dispatcher, tmp_path):
    d = await make_dispatcher(RESERVE_MIN_IDLE="2")
    reserve_ids = await d.fill(2)
    reserve_pids = {d.idle_pid(bot_id) for bot_id in reserve_ids}
    answers = await asyncio.gather(*(d.client.post("/start?wait=started", json={"body": {"n": n}}) for n in range(6)))
    assert [a.status_code for a in answers] == [201] * 6
    sessions = [a.json()["session_id"] for a in answers]
    assert len(set(sessions)) == 6
    pids = [d.session_pid(s) for s in sessions]
    assert len(set(pids)) == 6, "a bot serves two sessions"
    assert reserve_pids <= set(pids)  # both idle bots were used, each once
    warm = [s for s in sessions if d.session_pid(s) in reserve_pids]
    assert len(warm) == 2
    records = assignments(tmp_path)
    assert all(records[s].get("assigned") for s in warm)  # the warm ones were assigned over the channel
    assert all("argv" in records[s] for s in set(sessions) - set(warm))  # the surplus launched cold
    assert await d.metric("voicefleet_reserve_claims_total", outcome="warm_hit", provider="local") == 2
    assert await d.metric("voicefleet_reserve_claims_total", outcome="cold_miss", provider="local") == 4
    # The dispatcher itself never offered one bot twice (the bot would refuse, but it never had to).
    assert await d.metric("voicefleet_reserve_retired_total", reason="claim_refused", provider="local") == 0


async def test_concurrent_starts_with_one_key_claim_one_bot(make_dispatcher):
    d = await make_dispatcher(RESERVE_MIN_IDLE="2")
    await d.fill(2)
    headers = {"Idempotency-Key": "same-call"}
    first, second = await asyncio.gather(*(d.client.post("/start", json={}, headers=headers) for _ in range(2)))
    assert sorted([first.status_code, second.status_code]) == [200, 201]
    assert first.json()["session_id"] == second.json()["session_id"]
    assert len(d.channels.idle()) == 1  # the other reserve bot is untouched
    again = await d.client.post("/start", json={}, headers=headers)  # a later retry finds the claimed session
    assert again.status_code == 200 and again.json()["session_id"] == first.json()["session_id"]


async def test_a_claimed_bot_exits_with_its_session_and_is_never_idle_again(make_dispatcher):
    d = await make_dispatcher(RESERVE_MIN_IDLE="1")
    [bot_id] = await d.fill(1)
    session_id = (await d.client.post("/start", json={})).json()["session_id"]
    pid = d.session_pid(session_id)
    assert (await d.client.delete(f"/sessions/{session_id}")).status_code == 204
    assert not pid_alive(pid)
    [replacement] = await d.fill(1)
    assert replacement != bot_id
    assert bot_id not in {link.machine_id for link in d.channels.idle()}
    assert bot_id not in d.machines._idle
    await d.reserve.aclose()  # any retirement its leaving started has run
    # It left as a session's bot, not as a lost idle one: nothing retired it a second time.
    assert await d.metric("voicefleet_reserve_retired_total", reason="channel_lost", provider="local") == 0


async def test_the_reserve_keeps_records_only_of_bots_idle_now(make_dispatcher):
    """A bot taken off the pool and bound to a session by another path than the claim leaves no
    record behind once a refill has seen the pool: its leaving is a session's end, not a lost idle bot."""
    d = await make_dispatcher(RESERVE_MIN_IDLE="2")
    [taken, kept] = await d.fill(2)
    link = d.channels.take_idle(lambda link: link.machine_id == taken)
    d.channels.bind(link, "s-elsewhere")  # not through the reserve's claim
    await d.reserve.refill()
    assert len(d.reserve.idle_records) == len(d.channels.idle())
    await link.socket.close()
    assert await d.channels.wait_until(lambda: d.channels.link_for("s-elsewhere") is None, WAIT)
    await d.reserve.aclose()
    assert await d.metric("voicefleet_reserve_retired_total", reason="channel_lost", provider="local") == 0
    assert kept in {link.machine_id for link in d.channels.idle()}  # control: the idle one is still in the pool


async def test_the_sweep_never_stops_a_bot_whose_channel_serves_a_session(make_dispatcher):
    """The provider lists it idle (as Cloud Run does once the store lost its claim), past its idle
    age: its channel here says it serves a session, so the sweep leaves it."""
    d = await make_dispatcher(RESERVE_MIN_IDLE="2")
    [taken, kept] = await d.fill(2)
    link = d.channels.take_idle(lambda link: link.machine_id == taken)
    d.channels.bind(link, "s-live")  # a session's, its claim unknown to the provider
    for bot_id in (taken, kept):
        d.machines._idle[bot_id].created_at = 0.0  # aged
    assert {m.bot_id for m in await d.machines.idle_machines()} == {taken, kept}
    assert await d.reserve.sweep() == 1  # the idle one only
    assert pid_alive(d.idle_pid(taken))


async def test_a_draining_replica_sweeps_nothing(make_dispatcher):
    """It may run the last `up`'s settings for as long as its calls last: the bots of the new ones (a new
    K8S_BOT_SECRET) would look stale to it. The replicas that stay sweep."""
    d = await make_dispatcher(RESERVE_MIN_IDLE="1")
    [bot_id] = await d.fill(1)
    d.machines._idle[bot_id].created_at = 0.0  # aged, or stale to this replica
    await d.reserve.drain()
    assert await d.reserve.sweep() == 0
    assert pid_alive(d.idle_pid(bot_id))
    d.reserve._draining = False  # control: the same replica, not draining, stops it
    assert await d.reserve.sweep() == 1


async def test_an_idle_bot_whose_channel_drops_is_retired(make_dispatcher):
    d = await make_dispatcher(RESERVE_MIN_IDLE="1")
    [bot_id] = await d.fill(1)
    pid = d.idle_pid(bot_id)
    link = d.channels.idle()[0]
    await link.socket.close()  # the channel drops (from the dispatcher's side)
    assert await d.channels.wait_until(lambda: not d.channels.idle(), WAIT)
    await d.reserve.aclose()  # waits for the retirement the drop started
    assert not pid_alive(pid)
    assert await d.metric("voicefleet_reserve_retired_total", reason="channel_lost", provider="local") == 1
    response = await d.client.post("/start", json={})  # nothing idle: a cold start, not a failure
    assert response.status_code == 201
    assert await d.metric("voicefleet_reserve_claims_total", outcome="cold_miss", provider="local") == 1


async def test_idle_bots_past_their_age_are_retired_and_replaced(make_dispatcher):
    d = await make_dispatcher(RESERVE_MIN_IDLE="1", RESERVE_MAX_IDLE_SECONDS="30")
    now = [1000.0]
    d.reserve._clock = lambda: now[0]
    [old] = await d.fill(1)
    old_pid = d.idle_pid(old)
    now[0] += 31
    await d.reserve.refill()
    assert not pid_alive(old_pid)
    assert await d.metric("voicefleet_reserve_retired_total", reason="aged_or_surplus", provider="local") == 1
    [new] = await d.fill(1)
    assert new != old


async def test_a_new_bot_image_retires_the_old_images_idle_bots_first(make_dispatcher, monkeypatch):
    d = await make_dispatcher(RESERVE_MIN_IDLE="2")
    old_ids = await d.fill(2)
    old_pids = [d.idle_pid(b) for b in old_ids]
    # A deploy (locally: an edit of the bot's files): new bots run another image.
    monkeypatch.setattr(type(d.machines), "bot_image", property(lambda machines: "v2"))
    await d.reserve.refill()
    assert not any(map(pid_alive, old_pids))
    assert await d.metric("voicefleet_reserve_retired_total", reason="old_image", provider="local") == 2
    response = await d.client.post("/start", json={})  # never an old-image bot, even before the new ones are up
    assert d.session_pid(response.json()["session_id"]) not in old_pids


async def test_the_reserves_cost_is_counted_in_idle_machine_seconds_and_ready_times_are_split(make_dispatcher):
    d = await make_dispatcher(RESERVE_MIN_IDLE="1")
    now = [5000.0]
    d.reserve._clock = lambda: now[0]
    await d.fill(1)
    now[0] += 10
    await d.reserve.refill()  # one idle bot for 10 s of the reserve's clock
    assert await d.metric("voicefleet_reserve_idle_machine_seconds_total", state="idle", provider="local") == 10
    assert await d.metric("voicefleet_reserve_bots", state="idle", provider="local") == 1
    started = await d.client.post("/start?wait=started", json={})
    session_id = started.json()["session_id"]
    link = d.channels.link_for(session_id)
    assert await d.channels.wait_until(lambda: "ready" in link.reports, WAIT)  # the bot's own report
    assert await d.metric("voicefleet_start_to_ready_seconds_count", path="warm", provider="local") == 1
    assert await d.metric("voicefleet_start_to_ready_seconds_count", path="cold", provider="local") == 0


async def test_other_regions_are_told_the_planners_demand_as_saved_unless_this_replica_plans(make_dispatcher):
    d = await make_dispatcher()
    sizer, wall = d.reserve.planning.sizer, d.reserve._wall()
    for i in range(20):
        sizer.arrived(wall - 100 + i)  # a start a second, then none for 80 s
    sizer.plan(wall - 80, Fleet([], []), 0)  # the lease holder's last plan before it saved this state
    d.reserve.planning.holding = False
    copy = await d.reserve.region_figures()
    d.reserve.planning.holding = True
    own = await d.reserve.region_figures()
    assert copy.rate == sizer.demand(wall - 80).rate > 2 * own.rate  # a copy's read now would have fallen
