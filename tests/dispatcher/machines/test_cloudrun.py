"""The Cloud Run provider's own rules, beyond the shared contract: the run it asks for, its
refusals (a quota, a missing grant, overrides over the API's limits), a run whose answer was lost,
and the hello's proof (the bots' service account's token, for a session whose execution runs)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.identity import MachineIdentity
from botchannel.contract import Hello
from dispatcher.app import create_app
from dispatcher.channel.credentials import BotGrant
from dispatcher.factory import configuration_problems
from dispatcher.machines.base import LaunchSpec, MachinesError, MachineState
from dispatcher.machines.cloudrun.provider import CloudRunMachines, CloudRunSettings
from dispatcher.settings import Settings, SettingsError, hash_api_key
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.harness import settle
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.cloud_run_jobs import CHANNEL_AUDIENCE, FakeCloudRunJobs
from tests.support.http_client import api_client
from tests.support.waiting import within

KEY = "cloudrun-key-0123456789abcdef"


def channel_spec() -> LaunchSpec:
    """A session of a deployment with a bot channel: its bot proves its execution in its hello."""
    return dataclasses.replace(spec(), channel_token="cred." + secrets.token_hex(8))


@pytest.fixture
async def cloudrun(fake_cloud_run_jobs: FakeCloudRunJobs) -> AsyncIterator[CloudRunMachines]:
    env = {**fake_cloud_run_jobs.env, "CLOUDRUN_RETRY_DEADLINE_SECONDS": "3"}
    provider = CloudRunMachines(CloudRunSettings.from_env(env), coordination=LocalCoordination())
    yield provider
    await provider.aclose()


def runs(fake: FakeCloudRunJobs) -> list[dict]:  # type: ignore[type-arg]
    return [c.json() for c in fake.calls_to("POST", ":run")]


async def test_a_session_is_one_task_with_the_sessions_cap_and_its_env_merged_with_the_jobs(
    cloudrun: CloudRunMachines, fake_cloud_run_jobs: FakeCloudRunJobs
) -> None:
    s = LaunchSpec(session_id="a" * 24, body_digest="d" * 32, max_session_seconds=900, channel_token="cred.1.2.3",
                   transport="webrtc")
    await cloudrun.launch(s)
    [run] = runs(fake_cloud_run_jobs)
    assert run["overrides"]["taskCount"] == 1 and run["overrides"]["timeout"] == f"{900 + 120}s"
    assert "args" not in run["overrides"]["containerOverrides"][0]  # secrets never on a command line
    [execution] = fake_cloud_run_jobs.of_session(s.session_id)
    env = fake_cloud_run_jobs.env_of(execution)
    assert env["BOT_CHANNEL_URL"] == CHANNEL_AUDIENCE  # the job's own, kept: overrides merge
    assert env["BOT_CHANNEL_TOKEN"] == "cred.1.2.3" and env["BOT_IDENTITY"] == "cloudrun"
    assert (env["VOICEFLEET_BODY_DIGEST"], env["VOICEFLEET_SESSION_TRANSPORT"]) == ("d" * 32, "webrtc")


async def test_the_running_executions_quota_is_answered_at_capacity_at_once_not_retried(
    cloudrun: CloudRunMachines, fake_cloud_run_jobs: FakeCloudRunJobs
) -> None:
    fake_cloud_run_jobs.max_running = 1
    await cloudrun.launch(spec())
    with pytest.raises(MachinesError) as caught:
        await cloudrun.launch(spec())
    assert caught.value.reason == "cloudrun_capacity" and caught.value.retry_after == 30.0
    assert len(runs(fake_cloud_run_jobs)) == 2  # one refused run: retrying a quota spends the rate limit


async def test_a_start_past_the_quota_is_a_503_with_retry_after(fake_cloud_run_jobs: FakeCloudRunJobs) -> None:
    fake_cloud_run_jobs.max_running = 0
    settings = Settings(machines="cloudrun", api_key_hashes=frozenset({hash_api_key(KEY)}), max_session_seconds=600,
                        max_concurrent_sessions=10, transports=("webrtc",), bot_channel_token="c" * 40)
    env = {**fake_cloud_run_jobs.env, "TURN_URLS": "turn:turn.example.com:3478", "TURN_SHARED_SECRET": "t" * 40}
    machines = CloudRunMachines(CloudRunSettings.from_env(env), coordination=LocalCoordination())
    app = create_app(settings, env=env, machines=machines, rooms=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://x") as http:
        answer = await http.post("/start", json={}, headers={"Authorization": f"Bearer {KEY}"})
    await app.state.voicefleet.aclose()
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "cloudrun_capacity" and answer.headers["Retry-After"] == "30"


async def test_a_run_whose_answer_was_lost_is_found_not_run_again(fake_cloud_run_jobs: FakeCloudRunJobs) -> None:
    """No idempotency key on jobs.run: the first run made its execution, its answer came too late."""
    env = {**fake_cloud_run_jobs.env, "CLOUDRUN_TIMEOUT_SECONDS": "0.3", "CLOUDRUN_RETRY_DEADLINE_SECONDS": "5"}
    provider = CloudRunMachines(CloudRunSettings.from_env(env), coordination=LocalCoordination())
    fake_cloud_run_jobs.delay(1.0, times=1, method="POST", path_suffix=":run")
    s = spec()
    try:
        result = await provider.launch(s)
        settle(fake_cloud_run_jobs, 10)  # every run the fake received has landed
        assert len(fake_cloud_run_jobs.of_session(s.session_id)) == 1
        assert result.created is True and await provider.status(s.session_id) is not None
    finally:
        await provider.aclose()


async def test_a_second_execution_of_a_session_is_cancelled_where_it_is_seen(
    cloudrun: CloudRunMachines, fake_cloud_run_jobs: FakeCloudRunJobs
) -> None:
    s = spec()
    first = await cloudrun.launch(s)
    await cloudrun.run(cloudrun.session_env(s), 60)  # a lost run's execution that landed after all
    replica = CloudRunMachines(cloudrun.settings, coordination=LocalCoordination())
    try:
        found = await replica.status(s.session_id)
    finally:
        await replica.aclose()
    assert found is not None and found.machine_id == first.machine.machine_id  # the first one serves
    assert sum(not e.get("completionTime") for e in fake_cloud_run_jobs.of_session(s.session_id)) == 1


async def test_overrides_without_their_grant_are_refused_as_unauthorized_without_retry(
    cloudrun: CloudRunMachines, fake_cloud_run_jobs: FakeCloudRunJobs
) -> None:
    fake_cloud_run_jobs.grant_overrides = False  # run.jobs.run alone, not run.jobs.runWithOverrides
    with pytest.raises(MachinesError) as caught:
        await cloudrun.launch(spec())
    assert caught.value.reason == "cloudrun_unauthorized" and caught.value.retry_after is None
    assert len(runs(fake_cloud_run_jobs)) == 1


async def test_a_body_over_the_env_value_limit_is_rejected(cloudrun: CloudRunMachines) -> None:
    s = LaunchSpec(session_id="b" * 24, body_digest="d" * 32, max_session_seconds=60, body={"x": "y" * 40000})
    with pytest.raises(MachinesError) as caught:
        await cloudrun.launch(s)  # no channel: the body travels in the env, and a value holds 32768 characters
    assert caught.value.reason == "cloudrun_rejected"


async def test_a_failed_execution_reports_its_tasks_exit_code(
    cloudrun: CloudRunMachines, fake_cloud_run_jobs: FakeCloudRunJobs
) -> None:
    s = spec()
    result = await cloudrun.launch(s)
    fake_cloud_run_jobs.lose(result.machine.machine_id)
    machine = await cloudrun.status(s.session_id)
    assert machine is not None and machine.state.value == "failed" and machine.detail == "exit code 137"
    assert [m.session_id for m in await cloudrun.list()] == []  # ended: nothing left for the reaper
    assert await cloudrun.stop(s.session_id) is True  # stopping an ended one is a no-op


def test_settings_refuse_no_auth_against_google_and_name_the_bots_service_account() -> None:
    with pytest.raises(SettingsError, match="CLOUDRUN_AUTH=none"):
        CloudRunSettings.from_env({"CLOUDRUN_PROJECT": "p", "CLOUDRUN_REGION": "r", "CLOUDRUN_JOB": "j",
                                   "CLOUDRUN_AUTH": "none"})
    problems = configuration_problems({"MACHINES": "cloudrun", "DISPATCHER_API_KEYS": KEY, "CLOUDRUN_PROJECT": "p",
                                       "CLOUDRUN_REGION": "r", "CLOUDRUN_JOB": "j", "BOT_CHANNEL_TOKEN": "c" * 40,
                                       "BOT_CHANNEL_URL": "wss://d.example/bots/channel", "TRANSPORTS": "daily",
                                       "DAILY_API_KEY": "k"})
    assert any("CLOUDRUN_BOT_SERVICE_ACCOUNT_ID" in p for p in problems), problems


async def bot_token(fake: FakeCloudRunJobs, execution: str, nonce_of: str | None = None) -> str | None:
    """The token the bot of `execution` gets, with the nonce in the env of `nonce_of` (its own by default)."""
    nonce = fake.env_of(fake.execution(nonce_of or execution))["VOICEFLEET_EXECUTION_NONCE"]
    env = {"GCE_METADATA_HOST": fake.metadata_host(execution), "VOICEFLEET_EXECUTION_NONCE": nonce}
    return await MachineIdentity("cloudrun", CHANNEL_AUDIENCE, env).token()


async def test_a_hello_needs_the_bots_service_account_token_and_its_sessions_execution_running(
    cloudrun: CloudRunMachines, fake_cloud_run_jobs: FakeCloudRunJobs
) -> None:
    fake = fake_cloud_run_jobs
    s = channel_spec()
    name = (await cloudrun.launch(s)).machine.machine_id
    fake.set_state(name, "started")
    grant = BotGrant("session", s.session_id, 2**31)

    def hello(identity: str | None) -> Hello:
        return Hello(machine_id=name, session_id=s.session_id, identity=identity)

    token = await bot_token(fake, name)
    assert token is not None and "compute_engine" not in json.dumps(token)
    assert await cloudrun.identity.refusal(grant, hello(token)) is None  # the positive control
    assert "no identity token" in str(await cloudrun.identity.refusal(grant, hello(None)))  # a stolen credential
    other = fake.identity_token(CHANNEL_AUDIENCE, subject="104000000000000000999")  # another service account
    assert "service account" in str(await cloudrun.identity.refusal(grant, hello(other)))
    elsewhere = fake.identity_token("wss://elsewhere.example/bots/channel")
    assert "audience" in str(await cloudrun.identity.refusal(grant, hello(elsewhere)))
    idle = BotGrant("idle", "bot-1", 2**31)  # no reserve execution of that bot: the job's account alone admits nothing
    assert "no running execution for reserve bot" in str(await cloudrun.identity.refusal(idle, hello(token)))
    fake.set_state(name, "succeeded")  # the session's execution is over: its credential opens nothing
    assert "no running execution" in str(await cloudrun.identity.refusal(grant, hello(token)))


async def test_a_variable_the_dispatcher_does_not_set_itself_is_never_sent_in_a_runs_overrides(
    cloudrun: CloudRunMachines, fake_cloud_run_jobs: FakeCloudRunJobs
) -> None:
    env = {**cloudrun.session_env(spec()), "PYTHONSTARTUP": "/tmp/x.py"}  # noqa: S108 - never opened
    with pytest.raises(MachinesError, match="PYTHONSTARTUP") as caught:
        await cloudrun.run(env, 60)
    assert caught.value.reason == "cloudrun_rejected" and runs(fake_cloud_run_jobs) == []


async def test_a_hello_from_another_execution_with_a_stolen_credential_is_refused(
    cloudrun: CloudRunMachines, fake_cloud_run_jobs: FakeCloudRunJobs
) -> None:
    """Same job, same service account, Google's token: the bot of B's execution holds A's credential."""
    fake = fake_cloud_run_jobs
    a, b = channel_spec(), channel_spec()
    victim = (await cloudrun.launch(a)).machine.machine_id
    thief = (await cloudrun.launch(b)).machine.machine_id
    for name in (victim, thief):
        fake.set_state(name, "started")
    stolen = BotGrant("session", a.session_id, 2**31)
    token = await bot_token(fake, thief)  # the thief's own token: its execution's nonce
    as_victim = Hello(machine_id=victim, session_id=a.session_id, identity=token)
    assert "nonce" in str(await cloudrun.identity.refusal(stolen, as_victim))
    as_itself = Hello(machine_id=thief, session_id=a.session_id, identity=await bot_token(fake, thief))
    assert "not " + victim in str(await cloudrun.identity.refusal(stolen, as_itself))
    # The victim's own bot passes: the positive control of the same check.
    own = Hello(machine_id=victim, session_id=a.session_id, identity=await bot_token(fake, victim))
    assert await cloudrun.identity.refusal(stolen, own) is None
    assert fake.env_of(fake.execution(victim))["VOICEFLEET_EXECUTION_NONCE"] != (
        fake.env_of(fake.execution(thief))["VOICEFLEET_EXECUTION_NONCE"])


@pytest.mark.parametrize(("failure", "status", "code"), [(500, 503, "cloudrun_unavailable"),
                                                         (None, 502, "cloudrun_unauthorized")])
async def test_a_sign_in_google_fails_or_refuses_is_a_provider_error_not_a_500(
    fake_cloud_run_jobs: FakeCloudRunJobs, failure: int | None, status: int, code: str
) -> None:
    """google-auth's own refresh against the fake's token endpoint: a 5xx there (a `RefreshError`
    google-auth marks retryable) may pass; a key Google refuses will not."""
    if failure is not None:
        fake_cloud_run_jobs.token_failure = failure
    else:
        fake_cloud_run_jobs.key_deleted = True  # the key file's key was deleted from its account
    settings = Settings(machines="cloudrun", api_key_hashes=frozenset({hash_api_key(KEY)}), max_session_seconds=600,
                        max_concurrent_sessions=10)
    machines = CloudRunMachines(CloudRunSettings.from_env(fake_cloud_run_jobs.env), coordination=LocalCoordination())
    app = create_app(settings, env=fake_cloud_run_jobs.env, machines=machines, rooms=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://x") as http:
        answer = await http.post("/start", json={}, headers={"Authorization": f"Bearer {KEY}"})
    await app.state.voicefleet.aclose()
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    assert (status == 503) == ("Retry-After" in answer.headers)
    assert not fake_cloud_run_jobs.calls_to("POST", ":run")  # nothing ran without a token


async def test_a_run_whose_sign_in_failed_was_never_sent_so_no_machine_is_looked_for(
    fake_cloud_run_jobs: FakeCloudRunJobs,
) -> None:
    """A 5xx from the token endpoint is `cloudrun_unavailable` like a lost run's answer, but no run
    left: the launch answers at once, with no look for an execution and no watch after it, each of
    which would only sign in again at an endpoint that is failing."""
    fake_cloud_run_jobs.token_failure = 500
    machines = CloudRunMachines(CloudRunSettings.from_env(fake_cloud_run_jobs.env), coordination=LocalCoordination())
    looked: list[str] = []
    machines.lost._status = lambda session_id: looked.append(session_id) or machines.status(session_id)  # type: ignore[method-assign]
    try:
        with pytest.raises(MachinesError) as refused:
            await machines.launch(spec())
        assert refused.value.reason == "cloudrun_unavailable"
        assert looked == [] and not machines.lost._watches
    finally:
        await machines.aclose()


async def fake_call(fake: FakeCloudRunJobs, method: str, path: str, body: object = None) -> httpx.Response:
    """A call to the fake as a client of Google's API makes it, signed in through its token endpoint."""
    auth = CloudRunMachines(CloudRunSettings.from_env(fake.env), coordination=LocalCoordination())
    try:
        headers = await auth._auth.headers()
    finally:
        await auth.aclose()
    async with api_client(base_url=fake.url) as http:
        return await http.request(method, path.removeprefix("/v2"), json=body, headers=headers)


@pytest.mark.parametrize(("body", "says"), [
    ({"overrides": {"taskCount": 1, "timeout": "0s"}}, "timeout"),
    ({"overrides": {"taskCount": 1, "timout": "60s"}}, 'Unknown name "timout"'),
    ({"validate_only": True}, 'Unknown name "validate_only"'),
    ({"overrides": {"containerOverrides": [{"name": "bot", "env": [{"name": "A", "val": "x"}]}]}}, '"val"'),
    ({"overrides": {"containerOverrides": [{"name": "bot", "env": [{"name": "1A", "value": "x"}]}]}}, "'1A'"),
    ({"overrides": {"containerOverrides": [{"name": "bot", "env": [{"name": "A-B", "value": "x"}]}]}}, "'A-B'"),
])
async def test_the_fake_refuses_a_run_the_api_would(fake_cloud_run_jobs: FakeCloudRunJobs, body: object,
                                                     says: str) -> None:
    answer = await fake_call(fake_cloud_run_jobs, "POST", f"{fake_cloud_run_jobs.job_path}:run", body)
    assert answer.status_code == 400 and answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert says in answer.json()["error"]["message"] and not fake_cloud_run_jobs.executions


async def test_the_fake_needs_a_token_and_each_calls_permission(fake_cloud_run_jobs: FakeCloudRunJobs) -> None:
    path = fake_cloud_run_jobs.job_path.removeprefix("/v2")
    async with api_client(base_url=fake_cloud_run_jobs.url) as http:
        assert (await http.get(f"{path}/executions")).status_code == 401
    fake_cloud_run_jobs.permissions.discard("run.executions.list")
    listed = await fake_call(fake_cloud_run_jobs, "GET", f"{fake_cloud_run_jobs.job_path}/executions")
    assert listed.status_code == 403 and "run.executions.list" in listed.json()["error"]["message"]
    fake_cloud_run_jobs.permissions.discard("run.jobs.run")
    ran = await fake_call(fake_cloud_run_jobs, "POST", f"{fake_cloud_run_jobs.job_path}:run", {})
    assert ran.status_code == 403 and not fake_cloud_run_jobs.executions


async def test_the_fakes_run_is_pending_first_and_its_cancel_is_done_when_its_task_has_stopped(
    cloudrun: CloudRunMachines, fake_cloud_run_jobs: FakeCloudRunJobs
) -> None:
    """A task that takes its time over SIGTERM (a bot saying goodbye): its execution runs until it exits."""
    stubborn = ("import signal, time; signal.signal(signal.SIGTERM, lambda *a: None); print('ready', flush=True); "
                "time.sleep(120)")
    fake_cloud_run_jobs.launcher = lambda env: subprocess.Popen([sys.executable, "-c", stubborn],
                                                                stdout=subprocess.PIPE)
    fake_cloud_run_jobs.pending_seconds = 3600.0  # never scheduled: the execution stays starting
    pending = await cloudrun.launch(spec())
    assert pending.machine.state is MachineState.STARTING
    assert await cloudrun.stop(pending.machine.session_id)
    ended = await cloudrun.status(pending.machine.session_id)
    assert ended is not None and ended.state is MachineState.ENDED  # cancelled before its task ran
    fake_cloud_run_jobs.pending_seconds = 0.0
    s = spec()
    await cloudrun.launch(s)
    await cloudrun.wait_started(s.session_id, 30)
    [name] = [str(e["name"]).rsplit("/", 1)[-1] for e in fake_cloud_run_jobs.of_session(s.session_id)]
    stdout = fake_cloud_run_jobs.process(name).stdout
    assert stdout is not None and await asyncio.to_thread(stdout.readline) == b"ready\n"  # SIGTERM is ignored now
    assert await cloudrun.stop(s.session_id)
    still = await cloudrun.status(s.session_id)
    assert still is not None and still.state is MachineState.STARTED  # its task ignores SIGTERM: not done yet
    fake_cloud_run_jobs.process(name).kill()
    fake_cloud_run_jobs.process(name).wait(timeout=30)
    assert await within(lambda: bool(fake_cloud_run_jobs.execution(name).get("cancelledCount")), 30) is not None
