"""A Modal bot's hello names its Sandbox: the Sandbox's OIDC identity token, checked by the real
`modal` client's provider against the fake Modal (which signs each Sandbox's token with its own key
and publishes it through a discovery document, as oidc.modal.com does). A token for another
Sandbox, an expired or forged one, another App's, or a finished Sandbox's is refused."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.base import MachineState
from dispatcher.machines.modal.identity import container_id
from dispatcher.machines.modal.provider import ModalMachines
from dispatcher.machines.modal.reserve import ModalWarmMachines
from dispatcher.machines.modal.settings import ModalSettings
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_modal import spec
from tests.fakes.modal_server import FakeModal, FakeSandbox
from tests.fakes.signing import SigningKey
from tests.support.waiting import until

CHANNEL = "wss://dispatcher.example.com/bots/channel"


@pytest.fixture
async def machines(fake_modal: FakeModal) -> AsyncIterator[ModalWarmMachines]:
    settings = ModalSettings.from_env({**fake_modal.env, "MODAL_RETRY_DEADLINE_SECONDS": "2"})
    provider = ModalWarmMachines(settings, coordination=LocalCoordination(), channel_url=CHANNEL,
                                 max_idle_seconds=600, max_session_seconds=600)
    try:
        yield provider
    finally:
        await provider.aclose()


def hello(token: str | None, session_id: str | None = None) -> Hello:
    return Hello(machine_id="m", session_id=session_id, identity=token)


def grant(session_id: str) -> BotGrant:
    return BotGrant("session", session_id, 2**40)


async def scheduled(fake: FakeModal, name: str) -> FakeSandbox:
    """The Sandbox once Modal has scheduled it: its token is set then (a create answers before)."""
    sandbox = fake.by_name(name)
    await until(lambda: sandbox.task_id, f"Sandbox {name} scheduled")
    return sandbox


async def launched(machines: ModalMachines, fake: FakeModal) -> tuple[str, FakeSandbox]:
    s = spec()
    await machines.launch(s)
    return s.session_id, await scheduled(fake, f"vf-{s.session_id}")


async def test_a_sandboxs_own_token_admits_its_hello_and_it_is_created_to_have_one(
    fake_modal: FakeModal, machines: ModalWarmMachines
) -> None:
    session_id, sandbox = await launched(machines, fake_modal)
    assert sandbox.identity and sandbox.env["BOT_IDENTITY"] == "modal"  # include_oidc_identity_token=True
    token = sandbox.env["MODAL_IDENTITY_TOKEN"]
    assert await machines.identity.refusal(grant(session_id), hello(token, session_id)) is None
    # Not one-use: the Sandbox has this one token, and its bot re-sends it on every re-dial.
    assert machines.identity.proof_seen(hello(token)) is None
    assert await machines.identity.refusal(grant(session_id), hello(token, session_id)) is None


async def test_a_token_for_another_sandbox_an_expired_or_forged_one_or_none_is_refused(
    fake_modal: FakeModal, machines: ModalWarmMachines
) -> None:
    session_id, sandbox = await launched(machines, fake_modal)
    _, other = await launched(machines, fake_modal)
    claims = fake_modal.identity_claims(sandbox)
    forger = SigningKey()
    forger.kid = fake_modal.signing_key.kid  # the published key's id, another key's signature
    refused = {
        "another Sandbox's": other.env["MODAL_IDENTITY_TOKEN"],
        "expired": fake_modal.signing_key.sign({**claims, "iat": int(time.time()) - 7200,
                                                "exp": int(time.time()) - 3600}),
        "forged": forger.sign(claims),
        "signed by a key Modal does not publish": SigningKey().sign(claims),
        "another App's": fake_modal.signing_key.sign({**claims, "app_id": "ap-someoneelse"}),
        "for another audience": fake_modal.signing_key.sign({**claims, "aud": CHANNEL}),
        "another issuer's": fake_modal.signing_key.sign({**claims, "iss": "https://oidc.example.com"}),
        "naming two containers": fake_modal.signing_key.sign({**claims, "container_id": other.task_id}),
    }
    for why, token in refused.items():
        reason = await machines.identity.refusal(grant(session_id), hello(token, session_id))
        assert reason is not None, why
    assert "another container" in str(await machines.identity.refusal(
        grant(session_id), hello(refused["another Sandbox's"], session_id)))
    assert "expired" in str(await machines.identity.refusal(grant(session_id), hello(refused["expired"], session_id)))
    assert "no identity token" in str(await machines.identity.refusal(grant(session_id), hello(None, session_id)))


async def test_a_finished_sandboxs_token_admits_nothing(fake_modal: FakeModal, machines: ModalWarmMachines) -> None:
    session_id, sandbox = await launched(machines, fake_modal)
    token = sandbox.env["MODAL_IDENTITY_TOKEN"]
    assert await machines.stop(session_id)
    assert "no running Sandbox" in str(await machines.identity.refusal(grant(session_id), hello(token, session_id)))


async def test_a_reserve_sandboxs_token_admits_its_idle_bot_and_still_after_its_claim(
    fake_modal: FakeModal, machines: ModalWarmMachines
) -> None:
    await machines.launch_idle("bot1", "credential")
    await machines.launch_idle("bot2", "credential")
    idle, other = await scheduled(fake_modal, "vf-idle-bot1"), await scheduled(fake_modal, "vf-idle-bot2")
    token = idle.env["MODAL_IDENTITY_TOKEN"]
    idle_grant = BotGrant("idle", "bot1", 2**40)
    assert await machines.identity.refusal(idle_grant, hello(token)) is None
    assert await machines.identity.refusal(idle_grant, hello(other.env["MODAL_IDENTITY_TOKEN"])) is not None
    s = spec()
    await machines.adopt("bot1", s)  # re-tagged for the session: the same Sandbox, the same name
    assert await machines.identity.refusal(idle_grant, hello(token, s.session_id)) is None


async def test_a_pending_sandbox_has_no_token_and_admits_nothing_until_modal_schedules_it(
    fake_modal: FakeModal, machines: ModalWarmMachines
) -> None:
    held = fake_modal.hold_starts(1)
    s = spec()
    launched = await machines.launch(s)  # Modal answers the create before the Sandbox runs
    sandbox = fake_modal.by_name(f"vf-{s.session_id}")
    await until(lambda: held.caught == 1, "the Sandbox's start held")
    assert launched.machine.state is MachineState.STARTING
    assert (await machines.status(s.session_id)).state is MachineState.STARTING  # type: ignore[union-attr]
    assert "MODAL_IDENTITY_TOKEN" not in sandbox.env
    token = fake_modal.signing_key.sign(fake_modal.identity_claims(sandbox))  # names no container yet
    assert "no running Sandbox" in str(await machines.identity.refusal(grant(s.session_id), hello(token, s.session_id)))
    held.release()
    await scheduled(fake_modal, sandbox.name)
    assert (await machines.status(s.session_id)).state is MachineState.STARTED  # type: ignore[union-attr]
    own = sandbox.env["MODAL_IDENTITY_TOKEN"]
    assert await machines.identity.refusal(grant(s.session_id), hello(own, s.session_id)) is None


def test_the_container_is_read_from_its_claim_or_from_sub_and_the_two_must_agree() -> None:
    sub = "modal:workspace_id:ac-1:environment_name:main:app_name:a:function_name:f:container_id:ta-1"
    assert container_id({"sub": sub}) == "ta-1"
    assert container_id({"sub": sub, "container_id": "ta-1"}) == "ta-1"
    assert container_id({"sub": sub, "container_id": "ta-2"}) is None
    assert container_id({"sub": "modal:workspace_id:ac-1"}) is None
