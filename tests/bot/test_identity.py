"""The real bot host proves which machine it runs on: its hello carries its provider's identity token.

On Compute Engine (`BOT_IDENTITY=gce`) it asks its VM's metadata server for an instance identity
token whose audience is the channel it dials, and a dispatcher that launched the VM admits it; a
bot whose metadata server does not answer cannot prove anything and says so in its failure report.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import httpx
import pytest

from botchannel.contract import CHANNEL_PATH
from dispatcher.app import create_app
from dispatcher.channel.credentials import BotCredentials
from dispatcher.machines.base import Machines
from dispatcher.machines.bot_environment import GCE_SESSION_METADATA
from dispatcher.machines.ecs.provider import EcsMachines, EcsSettings
from dispatcher.machines.gce.provider import GceMachines, GceSettings
from dispatcher.settings import Settings, hash_api_key
from dispatcher.store.local import LocalCoordination
from tests.bot.conftest import READY_TIMEOUT, bot_env
from tests.fakes.ecs import EcsProxy
from tests.fakes.fixtures import fake_ecs, moto_ecs  # noqa: F401 (fixtures: the ECS fakes)
from tests.fakes.gce import FakeGce
from tests.support.dispatcher_server import serving
from tests.support.ports import free_port

TOKEN = "i" * 40  # the deployment secret
KEY = "bot-identity-key-0123456789"


@contextlib.asynccontextmanager
async def one_cold_session(machines: Machines, port: int) -> AsyncIterator[str]:
    """A dispatcher with a channel on `port`, and one cold WebRTC session started on it: its id."""
    settings = Settings(machines=machines.name, api_key_hashes=frozenset({hash_api_key(KEY)}),
                        bot_channel_token=TOKEN, transports=("webrtc",), max_session_seconds=600,
                        max_concurrent_sessions=100)  # the ECS fake's cluster keeps earlier tests' tasks
    env = {"TURN_URLS": "turn:turn.example.com:3478", "TURN_SHARED_SECRET": "t" * 40}
    app = create_app(settings, env=env, machines=machines, rooms=None)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://x")
    async with serving(app, port), http:
        answer = await http.post("/start", json={"transport": "webrtc", "body": {"lang": "en"}},
                                 headers={"Authorization": f"Bearer {KEY}"})
        assert answer.status_code == 201, answer.text
        yield answer.json()["sessionId"]
    await app.state.voicefleet.aclose()


async def test_a_compute_engine_bot_sends_its_vms_identity_token_and_is_given_its_session(
    fake_gce: FakeGce, spawn_bot
) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}{CHANNEL_PATH}"  # what the bots dial: their tokens' audience
    machines = GceMachines(GceSettings.from_env({**fake_gce.env, "BOT_IDENTITY_AUDIENCE": url}),
                           coordination=LocalCoordination())
    async with one_cold_session(machines, port) as session_id:
        vm = f"vf-{session_id}"
        fake_gce.set_status(vm, "RUNNING")
        items = {i["key"]: i["value"] for i in fake_gce.instances[vm]["metadata"]["items"]}
        launch = {variable: items[key] for key, variable in GCE_SESSION_METADATA.items() if items[key]}
        bot = spawn_bot(env=bot_env(**launch, BOT_CHANNEL_URL=url, GCE_METADATA_HOST=fake_gce.metadata_host(vm)),
                        wait_ready=False)
        ready = await asyncio.to_thread(bot.next_event, "ready", READY_TIMEOUT)  # its values came: it was admitted
        assert ready["session_id"] == session_id
        # One token asked, for the channel it dials with a fragment of this dial's own (a fresh token).
        [(asked_for, audience)] = fake_gce.identity_requests
        assert asked_for == vm and audience.startswith(url + "#") and len(audience) > len(url) + 8
        bot.proc.terminate()
        assert await asyncio.to_thread(bot.wait, 30) is not None


async def test_an_ecs_bot_sends_its_task_roles_presigned_identity_and_is_given_its_session(
    fake_ecs: EcsProxy, spawn_bot  # noqa: F811 (the fixture)
) -> None:
    """The real bot host, launched with the task's overrides as ECS would run it, asks its task's
    credentials endpoint, presigns GetCallerIdentity, and the dispatcher (through the fake STS,
    which checks the signature with botocore) admits it: its session's values come."""
    port = free_port()
    url = f"ws://127.0.0.1:{port}{CHANNEL_PATH}"  # what the bot dials: the audience its presign is bound to
    machines = EcsMachines(EcsSettings.from_env({**fake_ecs.env, "BOT_IDENTITY_AUDIENCE": url}),
                           LocalCoordination())
    async with one_cold_session(machines, port) as session_id:
        [run] = [r for r in fake_ecs.requests_for("RunTask") if r["startedBy"] == session_id]
        launch = {e["name"]: e["value"] for e in run["overrides"]["containerOverrides"][0]["environment"]}
        task_arn = machines._arns[session_id]
        sts_calls = len(fake_ecs.sts.calls)
        bot = spawn_bot(env=bot_env(**launch, BOT_CHANNEL_URL=url, AWS_ENDPOINT_URL_STS=fake_ecs.sts.url,
                                    AWS_CONTAINER_CREDENTIALS_FULL_URI=fake_ecs.task_credentials.full_uri(task_arn)),
                        wait_ready=False)
        ready = await asyncio.to_thread(bot.next_event, "ready", READY_TIMEOUT)  # its values came: it was admitted
        assert ready["session_id"] == session_id
        # STS was asked (more than once when a loaded machine made the dispatcher retry a slow answer
        # or the bot dial again: both are the designed behaviour, and `ready` is the admission).
        assert launch["BOT_IDENTITY"] == "ecs" and len(fake_ecs.sts.calls) > sts_calls
        bot.proc.terminate()
        assert await asyncio.to_thread(bot.wait, 30) is not None


def test_a_bot_whose_metadata_server_does_not_answer_ends_saying_so(spawn_bot) -> None:
    credential = BotCredentials(TOKEN).issue("idle", "rsv-1", 600)
    env = bot_env(BOT_CHANNEL_URL="ws://127.0.0.1:9/bots/channel", BOT_CHANNEL_TOKEN=credential,
                  BOT_MACHINE_ID="rsv-1", BOT_IDENTITY="gce", GCE_METADATA_HOST="127.0.0.1:9")
    bot = spawn_bot(env=env, wait_ready=False)
    assert bot.wait(45) == 3
    ended = bot.next_event("ended", 5)
    assert ended["reason"] == "channel_lost", ended
    assert "metadata server (127.0.0.1:9)" in ended["detail"], ended


def test_a_fly_bot_without_its_machines_api_socket_ends_saying_so(spawn_bot, tmp_path) -> None:
    credential = BotCredentials(TOKEN).issue("idle", "rsv-2", 600)
    env = bot_env(BOT_CHANNEL_URL="ws://127.0.0.1:9/bots/channel", BOT_CHANNEL_TOKEN=credential,
                  BOT_MACHINE_ID="rsv-2", BOT_IDENTITY="fly", BOT_FLY_API_SOCKET=str(tmp_path / "no-api.sock"))
    bot = spawn_bot(env=env, wait_ready=False)
    assert bot.wait(45) == 3
    ended = bot.next_event("ended", 5)
    assert ended["reason"] == "channel_lost" and "Machines API socket" in ended["detail"], ended


def test_an_unknown_identity_source_is_a_usage_error(spawn_bot) -> None:
    credential = BotCredentials(TOKEN).issue("idle", "rsv-3", 600)
    env = bot_env(BOT_CHANNEL_URL="ws://127.0.0.1:9/bots/channel", BOT_CHANNEL_TOKEN=credential,
                  BOT_IDENTITY="aws")
    bot = spawn_bot(env=env, wait_ready=False)
    assert bot.wait(30) == 2
    assert "BOT_IDENTITY must be one of gce, fly" in bot.stderr_tail()


def test_an_ecs_bot_whose_task_credentials_endpoint_does_not_answer_ends_saying_so(spawn_bot) -> None:
    credential = BotCredentials(TOKEN).issue("idle", "rsv-4", 600)
    env = bot_env(BOT_CHANNEL_URL="ws://127.0.0.1:9/bots/channel", BOT_CHANNEL_TOKEN=credential,
                  BOT_MACHINE_ID="rsv-4", BOT_IDENTITY="ecs", AWS_REGION="eu-west-1",
                  AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:9/v2/credentials/none")
    bot = spawn_bot(env=env, wait_ready=False)
    assert bot.wait(45) == 3
    ended = bot.next_event("ended", 5)
    assert ended["reason"] == "channel_lost", ended
    assert "task credentials endpoint (http://127.0.0.1:9/v2/credentials/none)" in ended["detail"], ended


def test_an_ecs_bots_presigned_request_is_the_one_botocore_presigns() -> None:
    """The bot signs with the standard library (its image has no botocore): the same URL, byte for
    byte, as botocore's SigV4QueryAuth for the same clock and credentials (the fake STS verifies
    with botocore too, so a signing mistake fails there as well)."""
    import time

    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from bot.identity import presign_get_caller_identity

    now = time.time()
    keys = ("ASIAEXAMPLE", "se/cr+et", "to+ken/with=odd&chars")
    audience = "wss://calls.example.com/bots/channel"
    ours = presign_get_caller_identity("https://sts.eu-west-1.amazonaws.com", "eu-west-1", *keys,
                                       audience=audience, now=now)
    request = AWSRequest(method="GET",
                         url="https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
                         headers={"x-voicefleet-channel": audience})
    request.context["timestamp"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    SigV4QueryAuth(Credentials(*keys), "sts", "eu-west-1", expires=60).add_auth(request)
    signature = request.url.rsplit("X-Amz-Signature=", 1)[1]
    assert ours.endswith(f"&X-Amz-Signature={signature}")
    assert sorted(ours.split("?", 1)[1].split("&")) == sorted(request.url.split("?", 1)[1].split("&"))


async def test_a_local_bots_proof_is_written_through_its_launch_socket_and_admitted_once() -> None:
    """bot/identity.py's `local` source against the local launcher's check
    (dispatcher/machines/local/launch_proof.py): each dial's nonce comes through the launch socket,
    admits one hello, and the same nonce from elsewhere, or another launch's, admits none."""
    from bot.identity import IdentityUnavailable, MachineIdentity
    from botchannel.contract import IDENTITY_FD_VARIABLE, Hello
    from dispatcher.channel.credentials import BotGrant
    from dispatcher.machines.local.launch_proof import LaunchedProcesses

    launched = LaunchedProcesses()
    mine, other = launched.launching("session", "s-1"), launched.launching("session", "s-2")
    mine.launched(os.getpid())  # this test is the launched process: the kernel attests its writes
    bot = MachineIdentity("local", "ws://127.0.0.1/bots/channel", {IDENTITY_FD_VARIABLE: str(mine.child.fileno())})
    grant = BotGrant("session", "s-1", 2**40)
    first, second = await bot.token(), await bot.token()
    assert first is not None and second is not None and first != second  # fresh for each dial
    assert await launched.refusal(grant, Hello(machine_id="m", session_id="s-1", identity=second)) is None
    assert await launched.refusal(grant, Hello(machine_id="m", session_id="s-1", identity=second))  # spent
    assert await launched.refusal(BotGrant("session", "s-2", 2**40),
                                  Hello(machine_id="m", session_id="s-2", identity=first))  # not s-2's socket
    assert await launched.refusal(grant, Hello(machine_id="m", session_id="s-1", identity=first)) is None
    assert await launched.refusal(grant, Hello(machine_id="m", session_id="s-1"))  # no proof at all
    launched.forget("session", "s-1")  # the process exited: its socket is closed
    with pytest.raises(IdentityUnavailable, match="launch socket"):
        await bot.token()
    with pytest.raises(IdentityUnavailable, match="BOT_IDENTITY_FD"):
        await MachineIdentity("local", "ws://127.0.0.1/bots/channel", {}).token()
    other.close()
    launched.close()


async def test_a_modal_bot_sends_its_sandboxs_token_rereading_modals_token_file_first(tmp_path) -> None:
    """`BOT_IDENTITY=modal`: the token Modal put in the Sandbox (a file it rewrites as the token renews,
    read afresh for each dial, else the variable); a Sandbox created without one cannot prove anything."""
    from bot.identity import IdentityUnavailable, MachineIdentity

    token_file = tmp_path / "token"
    token_file.write_text("a.first.token\n")
    env = {"MODAL_IDENTITY_TOKEN_FILE": str(token_file), "MODAL_IDENTITY_TOKEN": "an.older.token"}
    bot = MachineIdentity("modal", "wss://dispatcher.example.com/bots/channel", env)
    assert await bot.token() == "a.first.token"
    token_file.write_text("a.renewed.token")
    assert await bot.token() == "a.renewed.token"
    token_file.unlink()
    assert await bot.token() == "an.older.token"
    with pytest.raises(IdentityUnavailable, match="MODAL_IDENTITY_TOKEN"):
        await MachineIdentity("modal", "wss://dispatcher.example.com/bots/channel", {}).token()


async def test_a_kubernetes_bot_sends_its_pods_projected_token_read_afresh_for_each_dial(tmp_path) -> None:
    """`BOT_IDENTITY=k8s`: the pod's projected ServiceAccount token (a file the kubelet rewrites as it
    refreshes it); a pod without it mounted cannot prove anything."""
    from bot.identity import IdentityUnavailable, MachineIdentity

    token_file = tmp_path / "token"
    token_file.write_text("a.projected.token\n")
    bot = MachineIdentity("k8s", "wss://dispatcher.example.com/bots/channel", {"BOT_K8S_TOKEN_FILE": str(token_file)})
    assert await bot.token() == "a.projected.token"
    token_file.write_text("a.refreshed.token")
    assert await bot.token() == "a.refreshed.token"
    token_file.unlink()
    with pytest.raises(IdentityUnavailable, match="projected"):
        await bot.token()
