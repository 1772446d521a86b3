"""Several Fly apps (`FLY_APPS`), a reserve bot after its claim: a claimed reserve bot that dials
again (its channel dropped) is admitted with its idle credential and its session's id, for the
whole session, at the replica that claimed it or any other (dispatcher/channel/admission.py). The
replica that launched it pins its Machine's app and id, so a name-twin `vf-idle-<bot id>` made in
another of the deployment's apps (a thief with the bot's launch credential, readable in its
machine config, and a create right in one listed app) is refused there. The claim must not lift
that pin: then the thief's twin, with its own genuine OIDC token, is admitted in the real bot's
place for as long as the session lasts, not only in the race before a reserve bot's first hello
that docs/security.md ("Several Fly apps") states. Against the Fly fake (its Machines API and
OIDC issuer), the provider's identity check as the channel calls it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.fly.provider import IDLE_NAME_PREFIX, FlySettings
from dispatcher.machines.fly.reserve import FlyWarmMachines
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_contract import spec
from tests.fakes import fly as fly_fake
from tests.fakes.server import serve
from tests.security.test_fly_apps_identity import APPS, name_twin


@pytest.fixture
def fly() -> Iterator[fly_fake.FakeFly]:
    with serve(fly_fake.FakeFly(other_apps=APPS[1:])) as fake:
        yield fake


def hello(bot_id: str, session_id: str | None, token: str) -> Hello:
    return Hello(machine_id=bot_id, image="dev", capabilities=("daily",), session_id=session_id, identity=token)


async def test_a_name_twin_of_a_claimed_reserve_bot_is_refused_where_it_was_launched_and_claimed(
    fly: fly_fake.FakeFly,
) -> None:
    here = FlyWarmMachines(FlySettings.from_env({**fly.env, "FLY_LIST_RATE": "100", "FLY_LIST_BURST": "100"}),
                           LocalCoordination(), channel_url=fly_fake.CHANNEL_AUDIENCE)
    try:
        bot_id, session_id = "b-twin-01", "s-claimed-01"
        await here.launch_idle(bot_id, "bot-credential")
        real = fly.by_name(IDLE_NAME_PREFIX + bot_id)
        other_app = next(a for a in APPS if a != real["_app"])
        token = name_twin(fly, other_app, IDLE_NAME_PREFIX + bot_id)
        grant = BotGrant("idle", bot_id, int(time.time()) + 600)
        # Positive control: before the claim, the launching replica pins the real machine's app and id.
        assert await here.identity.refusal(grant, hello(bot_id, None, token)) is not None
        assert await here.identity.refusal(
            grant, hello(bot_id, None, fly.oidc_token(real["id"], fly_fake.CHANNEL_AUDIENCE))) is None
        await here.adopt(bot_id, spec(session_id))
        refused = await here.identity.refusal(grant, hello(bot_id, session_id, token))
        assert refused is not None, (
            f"after the claim, a machine of {other_app} named like the reserve bot was admitted as its re-dial")
        # The real bot's own re-dial after the claim is still admitted.
        assert await here.identity.refusal(
            grant, hello(bot_id, session_id, fly.oidc_token(real["id"], fly_fake.CHANNEL_AUDIENCE))) is None
    finally:
        await here.aclose()


async def test_a_name_twin_of_a_reserve_bot_claimed_at_another_replica_is_refused_there(
    fly: fly_fake.FakeFly,
) -> None:
    """The replica that claims a bot another launched found its machine (by its idle tag, in its
    app): it pins that machine for the bot's re-dials, as the launching replica did."""
    settings = FlySettings.from_env({**fly.env, "FLY_LIST_RATE": "100", "FLY_LIST_BURST": "100"})
    launcher = FlyWarmMachines(settings, LocalCoordination(), channel_url=fly_fake.CHANNEL_AUDIENCE)
    claimer = FlyWarmMachines(settings, LocalCoordination(), channel_url=fly_fake.CHANNEL_AUDIENCE)
    try:
        bot_id, session_id = "b-twin-02", "s-claimed-02"
        await launcher.launch_idle(bot_id, "bot-credential")
        real = fly.by_name(IDLE_NAME_PREFIX + bot_id)
        token = name_twin(fly, next(a for a in APPS if a != real["_app"]), IDLE_NAME_PREFIX + bot_id)
        grant = BotGrant("idle", bot_id, int(time.time()) + 600)
        await claimer.adopt(bot_id, spec(session_id))
        assert await claimer.identity.refusal(grant, hello(bot_id, session_id, token)) is not None, (
            "the claiming replica admitted a name-twin of the bot it claimed")
        assert await claimer.identity.refusal(
            grant, hello(bot_id, session_id, fly.oidc_token(real["id"], fly_fake.CHANNEL_AUDIENCE))) is None
    finally:
        await launcher.aclose()
        await claimer.aclose()
