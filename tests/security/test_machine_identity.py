"""A cold bot's launch credential alone no longer lets whoever reads it dial first.

The credential is one of the machine's launch values, and those are readable by more than the
bot: anyone who may read a Compute Engine VM (`compute.instances.get`) sees its metadata, anyone
who may read a Fly app's machines their config, anyone who may `ecs:DescribeTasks` a task's
overrides. A hello must also carry the machine's identity, which only that machine can get: a
token the provider signs (a VM's metadata server, a Fly Machine's API socket), or on ECS a
GetCallerIdentity presigned with the task role's credentials, which the ECS agent gives that task
alone (the fake STS verifies its SigV4 signature with botocore's signer). Each attack below holds
the real launch credential, read from the machine as the fake provider's API describes it, and is
refused; the real bot, asking its own machine, still gets its session (the positive control).
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import boto3
import httpx
import pytest

from botchannel.contract import Hello, Reply, encode
from dispatcher.app import create_app
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.base import Machines
from dispatcher.machines.ecs.provider import EcsMachines, EcsSettings
from dispatcher.machines.ecs.reserve import EcsWarmMachines
from dispatcher.machines.fly.provider import FlyMachines, FlySettings
from dispatcher.machines.gce.provider import GceMachines, GceSettings
from dispatcher.settings import Settings, hash_api_key
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.harness import fly_identity, gce_identity
from tests.dispatcher.machines.test_contract import spec
from tests.fakes import fly as fly_fake
from tests.fakes import gce as gce_fake
from tests.fakes.ecs import EcsProxy
from tests.fakes.fixtures import fake_ecs, moto_ecs  # noqa: F401 (fixtures: the ECS provider's fakes)
from tests.fakes.server import serve
from tests.fakes.signing import SigningKey
from tests.fakes.sts import FakeSts, TaskRoleSessions
from tests.security.conftest import dial
from tests.support.cold_bot import channel_url, next_assign
from tests.support.dispatcher_server import serving

KEY = "identity-key-0123456789abcdef"
CALLER_DATA = "patient-4711"
ENV = {"TURN_URLS": "turn:turn.example.com:3478", "TURN_SHARED_SECRET": "t" * 40}
AUDIENCE = gce_fake.CHANNEL_AUDIENCE
assert fly_fake.CHANNEL_AUDIENCE == AUDIENCE


@dataclass
class Provider:
    """One provider's machines, as its fake describes them and as their bots reach their provider."""

    name: str
    machines: Callable[[], Machines]
    launch_credential: Callable[[str], str]  # what reading the machine's launch values shows
    own_token: Callable[[str], Awaitable[str | None]]  # the machine's own bot asks its provider


@dataclass(kw_only=True)
class TokenIssuer(Provider):
    """A provider whose machines' identity is a JWT it signs."""

    own_token_for: Callable[[str, str], str]  # (session, audience): the same, asked for another audience
    expired_token: Callable[[str], str]  # the machine's token, issued two hours ago
    claims: Callable[[str], dict[str, Any]]  # what a genuine token of the machine says
    key: SigningKey  # the issuer's own (what only the provider holds), for tokens it would never issue
    # the provider's own tokens that name no machine (a Compute Engine token in its standard format)
    anonymous: Callable[[str], dict[str, str]] = lambda sid: {}


def gce(fake: gce_fake.FakeGce) -> TokenIssuer:
    def metadata(sid: str) -> dict[str, str]:
        return {i["key"]: i["value"] for i in fake.instances[f"vf-{sid}"]["metadata"]["items"]}

    def credential(sid: str) -> str:
        assert metadata(sid)["bot-identity"] == "gce"  # the bot is told to prove its VM
        return metadata(sid)["bot-channel-token"]

    return TokenIssuer(
        name="gce", machines=lambda: GceMachines(GceSettings.from_env(fake.env), coordination=LocalCoordination()),
        launch_credential=credential,
        own_token=lambda sid: gce_identity(fake, f"vf-{sid}")(),
        own_token_for=lambda sid, aud: fake.identity_token(f"vf-{sid}", aud),
        expired_token=lambda sid: fake.identity_token(f"vf-{sid}", AUDIENCE, issued=time.time() - 7200),
        claims=lambda sid: {"iss": "https://accounts.google.com", "aud": AUDIENCE, "google": {"compute_engine": {
            "project_id": fake.project, "zone": fake.zone, "instance_name": f"vf-{sid}"}}},
        key=fake.signing_key,
        anonymous=lambda sid: {"standard format": fake.identity_token(f"vf-{sid}", AUDIENCE, full=False)},
    )


def fly(fake: fly_fake.FakeFly) -> TokenIssuer:
    def config(sid: str) -> dict[str, Any]:
        config: dict[str, Any] = fake.by_name(f"vf-{sid}")["config"]  # GET /v1/apps/{app}/machines/{id}
        return config

    def credential(sid: str) -> str:
        assert config(sid)["env"]["BOT_IDENTITY"] == "fly"  # the bot is told to prove its Machine
        return str(config(sid)["env"]["BOT_CHANNEL_TOKEN"])

    def machine_id(sid: str) -> str:
        return str(fake.by_name(f"vf-{sid}")["id"])

    return TokenIssuer(
        name="fly", machines=lambda: FlyMachines(FlySettings.from_env(fake.env), LocalCoordination()),
        launch_credential=credential,
        own_token=lambda sid: fly_identity(fake, f"vf-{sid}")(),
        own_token_for=lambda sid, aud: fake.oidc_token(machine_id(sid), aud),
        expired_token=lambda sid: fake.oidc_token(machine_id(sid), AUDIENCE, issued=time.time() - 7200),
        claims=lambda sid: {"iss": fake.issuer, "aud": AUDIENCE, "app_name": fake.app_name,
                            "machine_id": machine_id(sid), "machine_name": f"vf-{sid}"},
        key=fake.signing_key,
    )


def session_task(fake: EcsProxy, sid: str) -> dict[str, Any]:
    """The session's task as `ecs:DescribeTasks` shows it (its overrides included)."""
    ecs = boto3.client("ecs", region_name=fake.env["AWS_REGION"], endpoint_url=fake.env["AWS_ENDPOINT_URL"])
    arns = ecs.list_tasks(cluster=fake.env["ECS_CLUSTER"], startedBy=sid)["taskArns"]
    task: dict[str, Any] = ecs.describe_tasks(cluster=fake.env["ECS_CLUSTER"], tasks=arns)["tasks"][0]
    return task


def ecs(fake: EcsProxy) -> Provider:
    def credential(sid: str) -> str:
        container = session_task(fake, sid)["overrides"]["containerOverrides"][0]
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert env["BOT_IDENTITY"] == "ecs"  # the bot is told to prove its task
        return env["BOT_CHANNEL_TOKEN"]

    return Provider("ecs", lambda: EcsMachines(EcsSettings.from_env(fake.env), LocalCoordination()), credential,
                    own_token=lambda sid: fake.task_identity(session_task(fake, sid)["taskArn"]))


@dataclass
class Deployment:
    http: httpx.AsyncClient
    channel_url: str
    provider: Provider

    async def start(self) -> str:
        """A cold WebRTC session (its values are the caller's `body`): its machine is created."""
        answer = await self.http.post("/start", json={"transport": "webrtc", "body": {"note": CALLER_DATA}},
                                      headers={"Authorization": f"Bearer {KEY}"})
        assert answer.status_code == 201, answer.text
        session_id: str = answer.json()["sessionId"]
        return session_id


@pytest.fixture(params=["gce", "fly", "ecs"])
async def deployment(request: pytest.FixtureRequest) -> AsyncIterator[Deployment]:
    makers = {"gce": gce, "fly": fly, "ecs": ecs}
    async for deployed in _deploy(makers[request.param](request.getfixturevalue(f"fake_{request.param}"))):
        yield deployed


@pytest.fixture(params=["gce", "fly"])
async def jwt_deployment(request: pytest.FixtureRequest) -> AsyncIterator[Deployment]:
    """A deployment on a provider whose machines' identity is a token it signs."""
    makers = {"gce": gce, "fly": fly}
    async for deployed in _deploy(makers[request.param](request.getfixturevalue(f"fake_{request.param}"))):
        yield deployed


@pytest.fixture
async def ecs_deployment(fake_ecs: EcsProxy) -> AsyncIterator[Deployment]:  # noqa: F811 (the fixture)
    async for deployed in _deploy(ecs(fake_ecs)):
        yield deployed


async def _deploy(provider: Provider) -> AsyncIterator[Deployment]:
    settings = Settings(machines=provider.name, api_key_hashes=frozenset({hash_api_key(KEY)}),
                        max_session_seconds=600, max_concurrent_sessions=100, bot_channel_token="c" * 40,
                        transports=("webrtc",))
    app = create_app(settings, env=ENV, machines=provider.machines(), rooms=None)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://calls.example.com")
    async with serving(app) as port:
        yield Deployment(http, channel_url(port), provider)
    await http.aclose()
    await app.state.voicefleet.aclose()


def hello(session_id: str, identity: str | None, machine_id: str = "thief") -> Hello:
    return Hello(machine_id=machine_id, image="dev", capabilities=("webrtc",), session_id=session_id,
                 identity=identity)


async def takes_its_session(deployment: Deployment, session_id: str) -> dict[str, Any]:
    """The real bot: its machine's credential and its machine's identity token; it answers the assign."""
    provider = deployment.provider
    ws = await dial(deployment.channel_url, provider.launch_credential(session_id),
                    hello(session_id, await provider.own_token(session_id), machine_id=f"m-{session_id}"))
    assert ws is not None, "the real bot was refused"
    try:
        assign = await next_assign(ws)
        await ws.send(encode(Reply(assign.id, result={"session_id": session_id})))
        return dict(assign.params)
    finally:
        await ws.close()


async def test_a_stolen_launch_credential_without_the_machines_identity_is_refused_and_the_real_bot_serves(
    deployment: Deployment,
) -> None:
    session_id = await deployment.start()
    stolen = deployment.provider.launch_credential(session_id)
    assert await dial(deployment.channel_url, stolen, hello(session_id, None)) is None
    values = await takes_its_session(deployment, session_id)
    assert values["body"] == {"note": CALLER_DATA}


async def test_another_machines_identity_token_does_not_open_this_machines_session(deployment: Deployment) -> None:
    """The thief runs a machine of this very deployment (another session's bot): the provider signs
    its token, for the right audience, but it names another machine."""
    victim, own = await deployment.start(), await deployment.start()
    token = await deployment.provider.own_token(own)
    stolen = deployment.provider.launch_credential(victim)
    assert await dial(deployment.channel_url, stolen, hello(victim, token)) is None
    assert (await takes_its_session(deployment, victim))["body"] == {"note": CALLER_DATA}


async def test_an_expired_a_misaddressed_or_a_forged_token_of_the_machine_is_refused(
    jwt_deployment: Deployment,
) -> None:
    deployment = jwt_deployment
    provider = deployment.provider
    assert isinstance(provider, TokenIssuer)
    session_id = await deployment.start()
    stolen = provider.launch_credential(session_id)
    await provider.own_token(session_id)  # the machine is up (its token is the one to imitate)
    now = int(time.time())
    genuine = {**provider.claims(session_id), "iat": now, "nbf": now, "exp": now + 600}
    forger = SigningKey()
    forger.kid = provider.key.kid  # the issuer's key id, another key: the signature fails
    attempts = {
        "expired": provider.expired_token(session_id),
        "for another audience": provider.own_token_for(session_id, "https://attacker.example/collect"),
        "for an audience that only starts as ours": provider.own_token_for(session_id, AUDIENCE + ".attacker.example"),
        "valid for longer than any provider's": provider.key.sign({**genuine, "exp": now + 2 * 3600}),
        "signed with another key": forger.sign(genuine),
        "of another issuer": provider.key.sign({**genuine, "iss": "https://issuer.attacker.example"}),
        "not yet valid": provider.key.sign({**genuine, "iat": now, "nbf": now + 3600}),
        "with another algorithm": provider.key.sign(genuine, alg="RS384"),
        **provider.anonymous(session_id),
    }
    for what, token in attempts.items():
        assert await dial(deployment.channel_url, stolen, hello(session_id, token)) is None, what
    assert (await takes_its_session(deployment, session_id))["body"] == {"note": CALLER_DATA}



def _url(identity: str) -> str:
    return base64.urlsafe_b64decode(identity + "=" * (-len(identity) % 4)).decode()


def _identity(url: str) -> str:
    return base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def _with(identity: str, **changes: str) -> str:
    """The presigned URL with some query parameters changed (its signature kept unless named)."""
    parts = urlsplit(_url(identity))
    params = {**dict(parse_qsl(parts.query)), **changes}
    return _identity(parts._replace(query=urlencode(params)).geturl())


async def test_an_altered_or_forged_presigned_request_fails_its_signature_at_sts(
    ecs_deployment: Deployment, fake_ecs: EcsProxy,  # noqa: F811 (the fixture)
) -> None:
    """The thief holds the launch credential and a genuine presigned request of the task (captured
    in transit, say) and changes what it signed, or signs one with keys STS never issued, or holds
    one the task made for another channel: STS's own check of the signature (botocore's signer, in
    the fake) refuses each, so the dispatcher does. (Each alteration starts from a presign not yet
    presented: one whose signature was presented is refused before STS, as a replay.)"""
    deployment = ecs_deployment
    session_id = await deployment.start()
    stolen = deployment.provider.launch_credential(session_id)
    task_arn = session_task(fake_ecs, session_id)["taskArn"]

    async def altered(change: Callable[[dict[str, str]], dict[str, str]]) -> str:
        genuine = await deployment.provider.own_token(session_id)
        assert genuine is not None
        return _with(genuine, **change(dict(parse_qsl(urlsplit(_url(genuine)).query))))

    def flipped(signature: str) -> str:
        return signature[:-1] + ("0" if signature[-1] != "0" else "1")

    def moved(stamp: str) -> str:  # a second, `…SSZ`
        return stamp[:-2] + ("0" if stamp[-2] != "0" else "1") + "Z"

    for_elsewhere = await fake_ecs.task_identity(task_arn, audience="wss://other-deployment.example/bots/channel")
    assert for_elsewhere is not None
    attempts = {
        "its signature altered": await altered(lambda p: {"X-Amz-Signature": flipped(p["X-Amz-Signature"])}),
        "its time moved": await altered(lambda p: {"X-Amz-Date": moved(p["X-Amz-Date"])}),
        "longer-lived": await altered(lambda p: {"X-Amz-Expires": "100"}),
        "another session token": await altered(
            lambda p: {"X-Amz-Security-Token": p["X-Amz-Security-Token"][::-1]}),
        "made for another deployment's channel": for_elsewhere,
    }
    forger = TaskRoleSessions()  # keys of the same shape, which the task role never issued
    credential_path = forger.issue(session_task(fake_ecs, session_id)["taskArn"])
    forged_credentials = forger.credentials(credential_path.rsplit("/", 1)[-1])
    assert forged_credentials is not None
    from bot.identity import presign_get_caller_identity

    attempts["signed with keys STS never issued"] = _identity(presign_get_caller_identity(
        fake_ecs.sts.url, "eu-west-1", forged_credentials["AccessKeyId"], forged_credentials["SecretAccessKey"],
        forged_credentials["Token"], audience=AUDIENCE))
    for what, identity in attempts.items():
        before = len(fake_ecs.sts.calls)
        assert await dial(deployment.channel_url, stolen, hello(session_id, identity)) is None, what
        assert len(fake_ecs.sts.calls) > before, f"{what}: refused before STS, so STS's check was not what refused"
    assert (await takes_its_session(deployment, session_id))["body"] == {"note": CALLER_DATA}


async def test_a_presigned_request_aimed_elsewhere_or_at_another_action_is_never_sent(
    ecs_deployment: Deployment, fake_ecs: EcsProxy,  # noqa: F811 (the fixture)
) -> None:
    """The dispatcher sends a bot's request to STS only, and only a presigned GetCallerIdentity:
    one signed for another host (an address of the thief's, which would answer whatever it likes),
    or for another STS action, is refused without any call at all."""
    deployment = ecs_deployment
    session_id = await deployment.start()
    stolen = deployment.provider.launch_credential(session_id)
    task_arn = session_task(fake_ecs, session_id)["taskArn"]
    thiefs = TaskRoleSessions()  # the thief's own STS look-alike, answering "this task" to anything
    with serve(FakeSts(thiefs, region="eu-west-1")) as elsewhere:
        aimed_elsewhere = await fake_ecs.task_identity(task_arn, AWS_ENDPOINT_URL_STS=elsewhere.url)
        assert aimed_elsewhere is not None
        genuine = await deployment.provider.own_token(session_id)
        assert genuine is not None
        sts_calls = len(fake_ecs.sts.calls)
        attempts = {
            "another host": aimed_elsewhere,
            "another action": _with(genuine, Action="AssumeRole"),
            "another path": _identity(_url(genuine).replace("/?", "/redirect?", 1)),
            "another region's scope": _identity(_url(genuine).replace("%2Feu-west-1%2F", "%2Fus-east-1%2F")),
            "an extra parameter": _with(genuine, RoleArn="arn:aws:iam::123456789012:role/admin"),
            "not a URL": "bm90IGEgVVJM",
        }
        for what, identity in attempts.items():
            assert await dial(deployment.channel_url, stolen, hello(session_id, identity)) is None, what
        assert elsewhere.calls == [], "the dispatcher called the host the bot named"
        assert len(fake_ecs.sts.calls) == sts_calls, "a request that is no presigned GetCallerIdentity reached STS"
    assert (await takes_its_session(deployment, session_id))["body"] == {"note": CALLER_DATA}


async def test_a_reserve_bot_is_the_task_launched_for_its_bot_id_and_no_other(
    fake_ecs: EcsProxy,  # noqa: F811 (the fixture)
) -> None:
    """A reserve task's bot proves the task the reserve launched for its bot id (the id in that
    task's own RunTask overrides); a session's task, though of this deployment and its task role,
    is not that reserve bot, nor is the reserve task a session's."""
    machines = EcsWarmMachines(EcsSettings.from_env(fake_ecs.env), coordination=LocalCoordination(), channel_url="wss://calls.example.com/bots")
    try:
        await machines.launch_idle("rsv-identity-a", channel_token="c" * 40)
        await machines.launch_idle("rsv-identity-b", channel_token="c" * 40)
        cold = spec()
        launched = await machines.launch(cold)
        idle = BotGrant("idle", "rsv-identity-a", int(time.time()) + 600)
        session = BotGrant("session", cold.session_id, int(time.time()) + 600)

        async def refusal(grant: BotGrant, task_arn: str) -> str | None:
            return await machines.identity.refusal(grant, hello(grant.subject, await fake_ecs.task_identity(task_arn)))

        assert await refusal(idle, machines._idle_arns["rsv-identity-a"]) is None
        assert await refusal(session, launched.machine.machine_id) is None
        assert "launched for session" in str(await refusal(idle, launched.machine.machine_id))
        other_reserve_task = machines._idle_arns["rsv-identity-b"]
        assert "launched for reserve bot rsv-identity-b" in str(await refusal(idle, other_reserve_task))
        assert "launched for the reserve" in str(await refusal(session, machines._idle_arns["rsv-identity-a"]))
    finally:
        await machines.aclose()


async def test_an_account_whose_task_sessions_are_named_otherwise_refuses_every_bot_saying_what_sts_named(
    ecs_deployment: Deployment, fake_ecs: EcsProxy, caplog: pytest.LogCaptureFixture,  # noqa: F811
) -> None:
    """Fail-closed: should ECS name a task role's session other than by the task id, or the bots run
    under another role, no bot is admitted, and the log says what STS named instead."""
    deployment = ecs_deployment
    session_id = await deployment.start()
    credential = deployment.provider.launch_credential(session_id)
    fake_ecs.task_roles.session_name = lambda task_arn: "ecs-session-" + task_arn.rsplit("/", 1)[-1][:8]
    own = await deployment.provider.own_token(session_id)
    assert await dial(deployment.channel_url, credential, hello(session_id, own)) is None
    assert "STS names session 'ecs-session-" in caplog.text and f"(want session {session_id}'s task)" in caplog.text
    fake_ecs.task_roles.session_name = lambda task_arn: task_arn.rsplit("/", 1)[-1]
    fake_ecs.task_roles.role_arn = "arn:aws:iam::123456789012:role/some-other-task"
    assert await dial(deployment.channel_url, credential, hello(session_id, await deployment.provider.own_token(
        session_id))) is None
    assert "STS names role 'some-other-task'" in caplog.text
