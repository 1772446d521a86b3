"""A cold bot's launch credential alone no longer lets whoever reads it dial first.

The credential is one of the machine's launch values, and those are readable by more than the
bot: anyone who may read a Compute Engine VM (`compute.instances.get`) sees its metadata, anyone
who may read a Fly app's machines their config. A hello must also carry the machine's identity
token, which the provider signs and hands only to that machine (a VM's metadata server, a Fly
Machine's API socket). Each attack below holds the real launch credential, read from the machine
as the fake provider's API describes it, and is refused; the real bot, asking its own machine,
still gets its session (the positive control).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from botchannel.contract import Hello, Reply, encode
from dispatcher.app import create_app
from dispatcher.machines.base import Machines
from dispatcher.machines.fly.provider import FlyMachines, FlySettings
from dispatcher.machines.gce.provider import GceMachines, GceSettings
from dispatcher.settings import Settings, hash_api_key
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.harness import fly_identity, gce_identity
from tests.fakes import fly as fly_fake
from tests.fakes import gce as gce_fake
from tests.fakes.signing import SigningKey
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
    own_token_for: Callable[[str, str], str]  # (session, audience): the same, asked for another audience
    expired_token: Callable[[str], str]  # the machine's token, issued two hours ago
    claims: Callable[[str], dict[str, Any]]  # what a genuine token of the machine says
    key: SigningKey  # the issuer's own (what only the provider holds), for tokens it would never issue
    # the provider's own tokens that name no machine (a Compute Engine token in its standard format)
    anonymous: Callable[[str], dict[str, str]] = lambda sid: {}


def gce(fake: gce_fake.FakeGce) -> Provider:
    def metadata(sid: str) -> dict[str, str]:
        return {i["key"]: i["value"] for i in fake.instances[f"vf-{sid}"]["metadata"]["items"]}

    def credential(sid: str) -> str:
        assert metadata(sid)["bot-identity"] == "gce"  # the bot is told to prove its VM
        return metadata(sid)["bot-channel-token"]

    return Provider(
        "gce", lambda: GceMachines(GceSettings.from_env(fake.env)), credential,
        own_token=lambda sid: gce_identity(fake, f"vf-{sid}")(),
        own_token_for=lambda sid, aud: fake.identity_token(f"vf-{sid}", aud),
        expired_token=lambda sid: fake.identity_token(f"vf-{sid}", AUDIENCE, issued=time.time() - 7200),
        claims=lambda sid: {"iss": "https://accounts.google.com", "aud": AUDIENCE, "google": {"compute_engine": {
            "project_id": fake.project, "zone": fake.zone, "instance_name": f"vf-{sid}"}}},
        key=fake.signing_key,
        anonymous=lambda sid: {"standard format": fake.identity_token(f"vf-{sid}", AUDIENCE, full=False)},
    )


def fly(fake: fly_fake.FakeFly) -> Provider:
    def config(sid: str) -> dict[str, Any]:
        config: dict[str, Any] = fake.by_name(f"vf-{sid}")["config"]  # GET /v1/apps/{app}/machines/{id}
        return config

    def credential(sid: str) -> str:
        assert config(sid)["env"]["BOT_IDENTITY"] == "fly"  # the bot is told to prove its Machine
        return str(config(sid)["env"]["BOT_CHANNEL_TOKEN"])

    def machine_id(sid: str) -> str:
        return str(fake.by_name(f"vf-{sid}")["id"])

    return Provider(
        "fly", lambda: FlyMachines(FlySettings.from_env(fake.env), LocalCoordination()), credential,
        own_token=lambda sid: fly_identity(fake, f"vf-{sid}")(),
        own_token_for=lambda sid, aud: fake.oidc_token(machine_id(sid), aud),
        expired_token=lambda sid: fake.oidc_token(machine_id(sid), AUDIENCE, issued=time.time() - 7200),
        claims=lambda sid: {"iss": fake.issuer, "aud": AUDIENCE, "app_name": fake.app_name,
                            "machine_id": machine_id(sid), "machine_name": f"vf-{sid}"},
        key=fake.signing_key,
    )


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


@pytest.fixture(params=["gce", "fly"])
async def deployment(request: pytest.FixtureRequest) -> AsyncIterator[Deployment]:
    provider = gce(request.getfixturevalue("fake_gce")) if request.param == "gce" else fly(
        request.getfixturevalue("fake_fly"))
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


async def test_an_expired_a_misaddressed_or_a_forged_token_of_the_machine_is_refused(deployment: Deployment) -> None:
    provider = deployment.provider
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
        "signed with another key": forger.sign(genuine),
        "of another issuer": provider.key.sign({**genuine, "iss": "https://issuer.attacker.example"}),
        "not yet valid": provider.key.sign({**genuine, "iat": now, "nbf": now + 3600}),
        "with another algorithm": provider.key.sign(genuine, alg="RS384"),
        **provider.anonymous(session_id),
    }
    for what, token in attempts.items():
        assert await dial(deployment.channel_url, stolen, hello(session_id, token)) is None, what
    assert (await takes_its_session(deployment, session_id))["body"] == {"note": CALLER_DATA}

