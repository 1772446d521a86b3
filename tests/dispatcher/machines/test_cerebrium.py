"""`MACHINES=cerebrium` end to end: a real dispatcher on a real port, the fake Cerebrium API, and for
each run a real voicefleet bot process (`python -m bot`) standing in for the team's function; and
the faults Cerebrium can hand us: a refused key, an unknown function, throttling, a run that never
connects, a run lost mid-session (its channel drops)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from botchannel.contract import METHOD_STOP, Hello
from dispatcher.app import create_app
from dispatcher.channel.bots import BotChannels, BotLink
from dispatcher.machines.base import MachinesError, MachineState
from dispatcher.machines.cerebrium.provider import CerebriumMachines, CerebriumSettings
from dispatcher.settings import Settings, hash_api_key
from dispatcher.store.local import LocalCoordination
from dispatcher.store.secrets_vault import MemoryVault
from tests.dispatcher.machines.harness import CEREBRIUM_CHANNEL, NoSocket, cerebrium_harness, refused_second_launch
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.cerebrium import OTHER_PROJECT_KEY, FakeCerebrium, FakeRun, bot_process
from tests.support.cold_bot import channel_url
from tests.support.dispatcher_server import serving
from tests.support.ports import free_port
from tests.support.waiting import until, within

KEY = "cerebrium-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
TURN = {"TURN_URLS": "turn:turn.example.com:3478", "TURN_SHARED_SECRET": "s" * 24}


@dataclass
class Deployment:
    http: httpx.AsyncClient
    fake: FakeCerebrium
    machines: CerebriumMachines

    async def status(self, session_id: str) -> dict[str, object]:
        response = await self.http.get(f"/sessions/{session_id}", headers=AUTH)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def until(self, session_id: str, status: str, timeout: float = 60.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while (answer := await self.status(session_id))["status"] != status:
            assert time.monotonic() < deadline, f"session {session_id} is {answer}, not {status}"
            await asyncio.sleep(0.1)
        return answer


async def deploy(fake: FakeCerebrium, **env: str) -> AsyncIterator[Deployment]:
    port = free_port()
    settings = Settings(machines="cerebrium", api_key_hashes=frozenset({hash_api_key(KEY)}), max_session_seconds=600,
                        bot_channel_token=CEREBRIUM_CHANNEL["BOT_CHANNEL_TOKEN"], transports=("webrtc",),
                        start_wait_seconds=1.0)
    machines = cerebrium_harness(fake).make(BOT_CHANNEL_URL=channel_url(port), CEREBRIUM_REDIAL_SECONDS="0.5", **env)
    assert isinstance(machines, CerebriumMachines)
    app = create_app(settings, env=TURN, machines=machines, rooms=None)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
    async with serving(app, port):
        yield Deployment(http, fake, machines)
    await http.aclose()
    await app.state.voicefleet.aclose()


@pytest.fixture
async def deployment(fake_cerebrium: FakeCerebrium) -> AsyncIterator[Deployment]:
    fake_cerebrium.run = bot_process({"BOT_CONNECT_TIMEOUT_SECONDS": "120"})
    async for d in deploy(fake_cerebrium):
        yield d


def the_run(fake: FakeCerebrium, session_id: str) -> FakeRun:
    [run] = fake.of(session_id)
    return run


async def test_a_session_runs_on_a_real_bot_starting_until_its_hello_and_its_stop_reaches_the_bot(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One real bot's session: its launch values, `starting` from the accepted call until its bot's hello,
    the app container's environment (not the test process's), its stop over the channel; then a second
    run, lost mid-session, failed once its channel stays gone."""
    monkeypatch.setenv("VOICEFLEET_TEST_ONLY", "the test process's own")  # no Cerebrium app holds it
    held = deployment.fake.hold_starts(1)  # Cerebrium answers the call, then starts the run
    started = await deployment.http.post("/start", json={"body": {"persona": "x"}}, headers=AUTH)
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    run = the_run(deployment.fake, session_id)
    # The function is handed launch values only: no room, token, TURN credential or caller's body.
    assert set(run.body) == {"session_id", "channel_url", "channel_token", "max_session_seconds", "transport"}
    assert "persona" not in str(run.body)
    assert held.caught == 1 and run.began is None and run.process is None
    assert (await deployment.status(session_id))["status"] == "starting", "a run not begun is not starting"
    held.release()
    await deployment.until(session_id, "started")  # its bot said hello: the only way to know
    assert run.began is not None
    assert run.process is not None
    names = {entry.split(b"=", 1)[0] for entry in Path(f"/proc/{run.process.pid}/environ").read_bytes().split(b"\0")}
    assert b"VOICEFLEET_TEST_ONLY" not in names, "the bot has the test process's environment"
    assert {b"VOICEFLEET_SESSION_ID", b"BOT_CHANNEL_TOKEN", b"PATH"} <= names  # the function's values, the image's

    stopped = await deployment.http.delete(f"/sessions/{session_id}", headers=AUTH)
    assert stopped.status_code in (202, 204), stopped.text
    await asyncio.get_running_loop().run_in_executor(None, run.process.wait, 30)
    deployment.fake.sweep()
    assert run.ended == "returned"  # the function returned: the run is over at Cerebrium too
    assert (await deployment.status(session_id))["status"] == "ended"

    second = await deployment.http.post("/start", json={}, headers=AUTH)
    assert second.status_code == 201, second.text
    lost = second.json()["session_id"]
    await deployment.until(lost, "started")
    deployment.fake.end_run(the_run(deployment.fake, lost), "lost")  # killed: no `ended` report
    failed = await deployment.until(lost, "failed", timeout=15)
    assert "channel was lost" in str(failed), failed


async def test_a_run_whose_bot_never_connects_is_failed(fake_cerebrium: FakeCerebrium) -> None:
    fake_cerebrium.run = None  # accepted (202), and nothing ever dials
    async for d in deploy(fake_cerebrium, CEREBRIUM_CONNECT_SECONDS="1"):
        # No read of `starting` in between: at the setting's least (1 s) a busy machine's own delay
        # can outlast it. The reason names the connect deadline, nothing else.
        session_id = (await d.http.post("/start", json={}, headers=AUTH)).json()["session_id"]
        failed = await d.until(session_id, "failed", timeout=30)
        assert "did not connect within 1s" in str(failed), failed


async def test_throttling_past_the_retries_is_a_503_with_its_reason(fake_cerebrium: FakeCerebrium) -> None:
    fake_cerebrium.fail(429, times=1000, retry_after=0.05, method="POST", path_suffix="/start_bot")
    async for d in deploy(fake_cerebrium, CEREBRIUM_RETRY_DEADLINE_SECONDS="1"):
        response = await d.http.post("/start", json={}, headers=AUTH)
        assert response.status_code == 503, response.text
        assert "cerebrium_throttled" in response.text and "retry-after" in response.headers
        assert len(fake_cerebrium.calls_to("POST")) > 1  # retried, boundedly


async def test_a_call_cerebrium_refuses_or_cannot_answer_is_the_apis_502_or_503_with_its_reason(
    fake_cerebrium: FakeCerebrium,
) -> None:
    async for d in deploy(fake_cerebrium, CEREBRIUM_FUNCTION="run_bot", CEREBRIUM_RETRY_DEADLINE_SECONDS="1"):
        refused = await d.http.post("/start", json={}, headers=AUTH)  # no such function: 404 at Cerebrium
        assert refused.status_code == 502, refused.text
        assert refused.json()["error"]["code"] == "cerebrium_rejected" and "retry-after" not in refused.headers
    fake_cerebrium.fail(503, times=1000, method="POST", path_suffix="/start_bot")
    async for d in deploy(fake_cerebrium, CEREBRIUM_RETRY_DEADLINE_SECONDS="1"):
        unavailable = await d.http.post("/start", json={}, headers=AUTH)
        assert unavailable.status_code == 503, unavailable.text
        assert unavailable.json()["error"]["code"] == "cerebrium_unavailable"
        assert int(unavailable.headers["Retry-After"]) >= 1


@pytest.mark.parametrize(("key", "status", "names"), [("wrong", 401, "CEREBRIUM_API_KEY"),
                                                     (OTHER_PROJECT_KEY, 403, "CEREBRIUM_API_KEY")])
async def test_a_refused_key_is_a_configuration_error_naming_the_key(fake_cerebrium: FakeCerebrium, key: str,
                                                                     status: int, names: str) -> None:
    machines = cerebrium_harness(fake_cerebrium).make(**CEREBRIUM_CHANNEL, CEREBRIUM_API_KEY=key)
    try:
        with pytest.raises(MachinesError) as caught:
            await machines.launch(spec())
    finally:
        await machines.aclose()
    assert caught.value.reason == "cerebrium_unauthorized" and caught.value.retry_after is None
    assert names in caught.value.message and f"HTTP {status}" in caught.value.message
    assert key not in caught.value.message
    assert len(fake_cerebrium.calls) == 1  # never retried


async def test_an_unknown_function_names_the_way_forward(fake_cerebrium: FakeCerebrium) -> None:
    machines = cerebrium_harness(fake_cerebrium).make(**CEREBRIUM_CHANNEL, CEREBRIUM_FUNCTION="run_bot")
    try:
        with pytest.raises(MachinesError) as caught:
            await machines.launch(spec())
        s = spec()
        with pytest.raises(MachinesError):
            await machines.launch(s)
        failed = await machines.status(s.session_id)
    finally:
        await machines.aclose()
    assert caught.value.reason == "cerebrium_rejected"
    assert "cerebrium deploy" in caught.value.message and "CEREBRIUM_FUNCTION" in caught.value.message
    assert failed is not None and failed.state.value == "failed"  # a refused launch leaves a failed session


def test_a_private_function_is_refused_at_start_up() -> None:
    from dispatcher.factory import configuration_problems

    env = {"MACHINES": "cerebrium", "DISPATCHER_API_KEYS": KEY, **CEREBRIUM_CHANNEL, "CEREBRIUM_PROJECT": "p",
           "CEREBRIUM_APP": "a", "CEREBRIUM_API_KEY": "k", "DAILY_API_KEY": "d"}
    assert configuration_problems(env) == []
    [problem] = configuration_problems({**env, "CEREBRIUM_FUNCTION": "_start_bot"})
    assert "CEREBRIUM_FUNCTION" in problem
    [problem] = configuration_problems({k: v for k, v in env.items() if k != "BOT_CHANNEL_TOKEN"})
    assert "BOT_CHANNEL_TOKEN" in problem
    assert configuration_problems({**env, "BOT_GPU": "nvidia-l40s"}) == []  # every GPU has a Cerebrium name
    [problem] = configuration_problems({**env, "BOT_GPU": "rtx-4090"})  # one line, not one per check
    assert "BOT_GPU" in problem


async def test_the_grace_period_ends_a_run_whose_bot_outlives_it(fake_cerebrium: FakeCerebrium) -> None:
    """The platform's own cap (response_grace_period): the fake kills the function, as Cerebrium does."""
    fake_cerebrium.grace_seconds = 0.0
    fake_cerebrium.start_seconds = 0  # a warm replica: the function runs at once, and outlives the grace period
    fake_cerebrium.run = lambda run: subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    machines = cerebrium_harness(fake_cerebrium).make(**CEREBRIUM_CHANNEL)
    try:
        s = spec()
        await machines.launch(s)
        fake_cerebrium.sweep()
    finally:
        await machines.aclose()
    run = the_run(fake_cerebrium, s.session_id)
    assert run.ended == "grace_period" and run.process is not None and run.process.returncode is not None


def test_a_warm_replica_is_priced_and_the_cold_start_is_the_modelled_one() -> None:
    """Cerebrium's own warm pool (min_replicas), not a reserve of ours: one replica of the Pipecat
    guide's 4 vCPU / 18 GB app, at the published per-second prices; the told wait starts at 8 s."""
    from bench.reserve_sim_providers import BY_NAME, prices
    from dispatcher.reserve.policy import DEFAULT_COLD_START_SECONDS

    assert round(prices(BY_NAME["cerebrium"], {}).running_per_hour * 730, 2) == 173.87
    assert DEFAULT_COLD_START_SECONDS["cerebrium"] == 8.0


class SlowStore(MemoryVault):
    """The runs' records in a store that takes its time to answer a read (a loaded Redis)."""

    async def get(self, session_id: str) -> dict[str, object] | None:
        kept = await super().get(session_id)
        await asyncio.sleep(0.2)
        return kept


async def test_a_hello_that_lands_while_the_launch_records_its_run_id_is_kept(fake_cerebrium: FakeCerebrium) -> None:
    """A warm replica's bot can say hello before the launch has written the run id down: neither
    write may undo the other (the session would read `starting` until it is failed as never connected)."""
    machines = CerebriumMachines(CerebriumSettings.from_env({**fake_cerebrium.env, **CEREBRIUM_CHANNEL}),
                                 LocalCoordination(), records=SlowStore())
    loop = asyncio.get_running_loop()
    s = spec()
    link = BotLink(Hello(machine_id="run", session_id=s.session_id), NoSocket(), s.session_id)

    def function(run: FakeRun) -> None:  # the bot dials while the call is still being answered
        loop.call_soon_threadsafe(machines.bot_connected, link)

    fake_cerebrium.run = function
    fake_cerebrium.start_seconds = 0  # a warm replica takes the call at once
    try:
        await machines.launch(s)
        await machines.settled()
        machine = await machines.status(s.session_id)
    finally:
        await machines.aclose()
    assert machine is not None and machine.state is MachineState.STARTED
    assert machine.machine_id == the_run(fake_cerebrium, s.session_id).run_id


async def test_bot_gpu_names_the_compute_the_app_must_be_deployed_with(fake_cerebrium: FakeCerebrium,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """No call sets hardware on Cerebrium: the dispatcher says what the app's cerebrium.toml must say."""
    caplog.set_level("INFO", logger="dispatcher.machines.cerebrium")
    machines = cerebrium_harness(fake_cerebrium).make(**CEREBRIUM_CHANNEL, BOT_GPU="nvidia-l4")
    try:
        await machines.launch(spec())
    finally:
        await machines.aclose()
    assert 'compute = "ADA_L4"' in caplog.text
    [call] = fake_cerebrium.calls_to("POST")
    assert "ADA_L4" not in call.body.decode() and "gpu" not in call.body.decode()


async def test_a_process_full_of_run_records_refuses_a_start_with_a_retry_hint(fake_cerebrium: FakeCerebrium) -> None:
    """One process keeps its runs' records in memory, each for its session plus an hour: past what it
    keeps, a start is refused (retry later), never a 500, and nothing is called."""
    settings = CerebriumSettings.from_env({**fake_cerebrium.env, **CEREBRIUM_CHANNEL, "MAX_SESSION_SECONDS": "600"})
    assert settings.keep_seconds == 600 + 3600
    machines = CerebriumMachines(settings, LocalCoordination(), records=MemoryVault(max_kept=1))
    refused = await refused_second_launch(machines, spec)
    assert refused.reason == "cerebrium_capacity" and refused.retry_after is not None
    assert len(fake_cerebrium.runs) == 1


def channelled(fake: FakeCerebrium, **env: str) -> tuple[BotChannels, CerebriumMachines]:
    """A provider that hears its bots' channel (as a replica's BotChannels hands it their events)."""
    from dispatcher.channel.credentials import BotCredentials
    from dispatcher.channel.identity import Unverified

    coordination = LocalCoordination()
    channels = BotChannels(BotCredentials(CEREBRIUM_CHANNEL["BOT_CHANNEL_TOKEN"]), claims=coordination.claims,
                           identity=Unverified("test"))
    machines = CerebriumMachines(CerebriumSettings.from_env({**fake.env, **CEREBRIUM_CHANNEL, **env}), coordination)
    machines.watch_channels(channels)
    return channels, machines


async def asked_of_a_bot_that_dials(channels: BotChannels, machines: CerebriumMachines, session_id: str) -> list[str]:
    """What the session's bot is asked when it dials in (its run begun): the methods, in order."""
    from dispatcher.channel.credentials import BotGrant
    from tests.dispatcher.machines.test_cerebrium_replicas import StoppableBot

    bot = StoppableBot("here", session_id)
    serving = asyncio.create_task(channels.serve(bot, BotGrant("session", session_id, 2**40)))
    await within(lambda: bot.asked, 4, interval=0.02)
    bot.closed.set()
    await serving
    await machines.settled()
    return bot.asked


async def test_a_bot_that_dials_after_its_session_was_stopped_is_told_to_stop(fake_cerebrium: FakeCerebrium) -> None:
    """A stop before the bot dialled finds no channel to tell; the bot is told when it arrives, so its
    function returns instead of the run waiting out the bot's connect timeout (and being billed)."""
    channels, machines = channelled(fake_cerebrium)
    s = spec()
    try:
        await machines.launch(s)
        assert await machines.stop(s.session_id) is True  # nobody to tell yet
        assert await asked_of_a_bot_that_dials(channels, machines, s.session_id) == [METHOD_STOP]
        machine = await machines.status(s.session_id)
    finally:
        await machines.aclose()
    assert machine is not None and (machine.state, machine.detail) == (MachineState.ENDED, "stopped")


async def test_a_call_that_got_no_answer_is_never_sent_again_and_its_late_bot_is_told_to_stop(
    fake_cerebrium: FakeCerebrium,
) -> None:
    """The first call is held past the client's timeout: Cerebrium got it and will start its run. The
    call has no idempotency key, so a second call (Cerebrium would answer it 202) would start a
    second run, two bots billed for one session. It is never sent again: the start is refused
    `cerebrium_unavailable`, the session's run failed, and the late run's bot, when it dials, is
    told to stop. One session, one run."""
    channels, machines = channelled(fake_cerebrium, CEREBRIUM_TIMEOUT_SECONDS="0.5",
                                    CEREBRIUM_RETRY_DEADLINE_SECONDS="5")
    hold = fake_cerebrium.hold(times=1, method="POST", path_suffix="/start_bot")
    s = spec()
    try:
        launching = asyncio.create_task(machines.launch(s))
        await until(lambda: hold.caught, "the first call held")
        with pytest.raises(MachinesError) as refused:
            await launching
        assert refused.value.reason == "cerebrium_unavailable", refused.value
        hold.release()  # the held call is served now: Cerebrium starts its run
        await until(lambda: fake_cerebrium.of(s.session_id), "the late run")
        assert await asked_of_a_bot_that_dials(channels, machines, s.session_id) == [METHOD_STOP]
    finally:
        hold.release()
        await machines.aclose()
    assert len(fake_cerebrium.calls_to("POST")) == 1 and len(fake_cerebrium.of(s.session_id)) == 1
