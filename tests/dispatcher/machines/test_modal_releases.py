"""Modal launches each session's Sandbox from its release: the release's image id, tagged with the
release, read back by any replica; an image id Modal does not know is the release's clear refusal; an
idle Sandbox runs its release's image and keeps its release through the claim (real `modal` client
against the fake)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from botchannel.contract import IMAGE_VARIABLE
from dispatcher.machines.base import MachinesError
from dispatcher.machines.modal.provider import ModalMachines
from dispatcher.machines.modal.reserve import ModalWarmMachines
from dispatcher.machines.modal.settings import ModalSettings
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_modal import provider, spec
from tests.fakes.modal_server import IMAGE_ID, FakeModal

CANARY = "im-voicefleetcanary0000000"


def warm(fake: FakeModal) -> ModalWarmMachines:
    settings = ModalSettings.from_env({**fake.env, "MODAL_RETRY_DEADLINE_SECONDS": "2"})
    return ModalWarmMachines(settings, coordination=LocalCoordination(), channel_url="ws://127.0.0.1:9/bots",
                             max_idle_seconds=600, max_session_seconds=600)


async def test_a_session_of_a_release_runs_its_image_and_any_replica_reads_its_release(fake_modal) -> None:
    fake_modal.images.add(CANARY)
    machines, replica = provider(fake_modal), provider(fake_modal)
    try:
        s = replace(spec(), release="canary", image=CANARY)
        launched = await machines.launch(s)
        default = spec()
        await machines.launch(default)
        found = await replica.status(s.session_id)
        listed = {m.session_id: m.release for m in await replica.list()}
    finally:
        await machines.aclose()
        await replica.aclose()
    by_name = {sb.name: sb.image_id for sb in fake_modal.sandboxes.values()}
    assert by_name[f"vf-{s.session_id}"] == CANARY and by_name[f"vf-{default.session_id}"] == IMAGE_ID
    assert launched.machine.release == "canary" and found is not None and found.release == "canary"
    assert listed == {s.session_id: "canary", default.session_id: "default"}


async def test_a_release_whose_image_modal_lacks_is_refused_naming_the_release(fake_modal) -> None:
    machines: ModalMachines = warm(fake_modal)
    try:
        with pytest.raises(MachinesError) as refused:
            await machines.launch(replace(spec(), release="r-gone", image="im-nosuchimage000000000"))
        with pytest.raises(MachinesError) as idle_refused:
            await machines.launch_idle("bot-gone", image="im-nosuchimage000000000", release="r-gone")
    finally:
        await machines.aclose()
    assert refused.value.reason == idle_refused.value.reason == "release_image_missing"
    assert refused.value.retry_after is None
    assert "release 'r-gone'" in refused.value.message and "im-nosuchimage000000000" in refused.value.message


async def test_an_idle_sandbox_of_a_release_runs_its_image_and_keeps_its_release_when_claimed(fake_modal) -> None:
    fake_modal.images.add(CANARY)
    machines = warm(fake_modal)
    replica = provider(fake_modal)
    try:
        await machines.launch_idle("bot-1", channel_token="idle-credential", image=CANARY, release="canary")
        s = replace(spec(), release="canary", image=CANARY)
        adopted = await machines.adopt("bot-1", s)
        found = await replica.status(s.session_id)
    finally:
        await machines.aclose()
        await replica.aclose()
    (sandbox,) = fake_modal.sandboxes.values()
    assert sandbox.image_id == CANARY and sandbox.env[IMAGE_VARIABLE] == machines.reported_image(CANARY) == CANARY
    assert machines.reported_image(None) == machines.bot_image == IMAGE_ID
    assert adopted.machine.release == "canary" and found is not None and found.release == "canary"
