"""Several Fly apps (`FLY_APPS`): a machine's name is unique only within its app, so a Machine
OIDC token naming `vf-<session>` (or `vf-idle-<bot id>`) from another of the deployment's apps is
not the machine the dispatcher created. A thief with the stolen launch credential and a create
right in any one listed app (an app-scoped deploy token, say) makes that name-twin there and
presents its genuine token. The replica that created the machine pins its app and id; every
other replica must still refuse it: a cold session's app is the same at every replica
(`AppCreates.app_of`), and a reserve bot's app is known where it was launched."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.fly.provider import FlyMachines, FlySettings, machine_name
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_contract import spec
from tests.fakes import fly as fly_fake
from tests.fakes.server import serve

APPS = ("voicefleet-bots", "voicefleet-bots-2")


@pytest.fixture
def fly() -> Iterator[fly_fake.FakeFly]:
    with serve(fly_fake.FakeFly(other_apps=APPS[1:])) as fake:
        yield fake


def replica(fly: fly_fake.FakeFly) -> FlyMachines:
    return FlyMachines(FlySettings.from_env({**fly.env, "FLY_LIST_RATE": "100", "FLY_LIST_BURST": "100"}),
                       LocalCoordination())


THIEF_IMAGE = "registry.fly.io/thief:latest"


def name_twin(fly: fly_fake.FakeFly, app: str, name: str) -> str:
    """The thief's machine named `name` in `app` (the Machines API allows it: names are per app);
    its own genuine OIDC token for the channel's audience. Its image is one the thief pushed to the
    registry the credential reaches (Fly refuses a create of an image it cannot pull)."""
    fly.registry.add(THIEF_IMAGE)
    answer = httpx.post(f"{fly.env['FLY_API_HOST']}/v1/apps/{app}/machines", json={
        "name": name, "config": {"image": THIEF_IMAGE}},
        headers={"Authorization": f"Bearer {fly.env['FLY_API_TOKEN']}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return fly.oidc_token(answer.json()["id"], fly_fake.CHANNEL_AUDIENCE)


async def test_a_name_twin_in_another_listed_app_is_not_the_sessions_machine_at_any_replica(
    fly: fly_fake.FakeFly,
) -> None:
    here, there = replica(fly), replica(fly)
    try:
        session_id = "s-twin-01"
        await here.launch(spec(session_id))
        real_app = fly.by_name(machine_name(session_id))["_app"]
        other_app = next(a for a in APPS if a != real_app)
        token = name_twin(fly, other_app, machine_name(session_id))
        grant = BotGrant("session", session_id, int(time.time()) + 600)
        hello = Hello(machine_id="thief", image="dev", capabilities=("webrtc",), session_id=session_id,
                      identity=token)
        assert await here.identity.refusal(grant, hello) is not None  # the creating replica pins app and id
        refused = await there.identity.refusal(grant, hello)
        assert refused is not None, f"another replica admitted a machine of {other_app} as {real_app}'s"
    finally:
        await here.aclose()
        await there.aclose()
