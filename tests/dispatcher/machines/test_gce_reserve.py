"""Compute Engine with a warm reserve: idle VMs labelled idle, relabelled with the session on claim
(`instances.setLabels` under the label fingerprint), so stateless look-ups find a claimed VM."""

from __future__ import annotations

import asyncio
import time

import pytest

from dispatcher.app import create_app
from dispatcher.machines.base import MachinesError
from dispatcher.machines.gce.provider import GceSettings
from dispatcher.machines.gce.reserve import GceWarmMachines
from dispatcher.settings import Settings
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.harness import gce_identity
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.gce import FakeGce
from tests.support.dispatcher_server import serving
from tests.support.reserve_bot import claim, claimed_once, dial_idle, seen_by_another_replica

TOKEN = "g" * 40
LIFETIME = {"max_idle_seconds": 900.0, "max_session_seconds": 1800}  # RESERVE_MAX_IDLE_SECONDS, MAX_SESSION_SECONDS


@pytest.fixture
async def gce(fake_gce: FakeGce):  # type: ignore[no-untyped-def]
    provider = GceWarmMachines(GceSettings.from_env(fake_gce.env), coordination=LocalCoordination(), **LIFETIME)
    yield provider
    await provider.aclose()


def metadata(vm: dict) -> dict[str, str]:
    return {i["key"]: i["value"] for i in vm["metadata"]["items"]}


async def test_a_reserve_vm_is_labelled_idle_and_carries_no_session_and_no_secret(gce, fake_gce) -> None:
    fake_gce.template_metadata["bot-secrets"] = "BOT_CHANNEL_TOKEN=projects/p/secrets/channel/versions/3"
    await gce.launch_idle("rsv-0a1b")
    vm = fake_gce.instances["vf-idle-rsv-0a1b"]
    assert vm["labels"] == {**fake_gce.template_labels, "voicefleet-idle": "rsv-0a1b", "voicefleet-release": "default"}
    items = metadata(vm)
    assert items["bot-machine-id"] == "rsv-0a1b" and items["bot-image-digest"] == gce.bot_image
    assert items["bot-secrets"].endswith("/versions/3")  # the template's reference, read at boot
    assert items["startup-script"] == fake_gce.template_metadata["startup-script"]
    assert not {"session-id", "daily-token", "daily-room-url", "ice-config"} & set(items)
    fake_gce.set_status("vf-idle-rsv-0a1b", "RUNNING")
    assert [m.bot_id for m in await gce.idle_machines()] == ["rsv-0a1b"]
    assert await gce.list() == []  # not a session: admission does not count it


async def test_a_claim_relabels_the_vm_so_any_replica_finds_the_session(gce, fake_gce) -> None:
    await gce.launch_idle("rsv-2")
    fake_gce.set_status("vf-idle-rsv-2", "RUNNING")
    fake_gce.instances["vf-idle-rsv-2"]["creationTimestamp"] = "2026-01-01T00:00:00+00:00"  # idle for long
    s = spec()
    before = time.time()
    adopted = await gce.adopt("rsv-2", s)
    assert adopted.created and adopted.machine.session_id == s.session_id
    assert adopted.machine.created_at >= int(before)  # the session's age counts from the claim (the reaper)
    labels = fake_gce.instances["vf-idle-rsv-2"]["labels"]
    assert "voicefleet-idle" not in labels and labels["voicefleet-session"] == s.session_id
    other_replica = GceWarmMachines(GceSettings.from_env(fake_gce.env), coordination=LocalCoordination(), **LIFETIME)
    await seen_by_another_replica(other_replica, s, adopted)  # no cache: the label is the record
    assert fake_gce.instances == {}


async def test_a_bot_is_claimed_once(gce, fake_gce) -> None:
    await gce.launch_idle("rsv-3")
    await claimed_once(gce, "rsv-3", spec)


async def test_a_stale_label_fingerprint_is_read_again_once(gce, fake_gce) -> None:
    await gce.launch_idle("rsv-4")
    name = "vf-idle-rsv-4"
    hold = fake_gce.hold(method="POST", path_contains="/setLabels")  # the first write waits at the fake
    s = spec()
    claiming = asyncio.create_task(gce.adopt("rsv-4", s))
    assert await fake_gce.eventually(lambda: hold.caught == 1)
    fake_gce.relabel_behind_our_back(name, team="ops")  # the fingerprint the claim read is stale now
    hold.release()
    await claiming
    writes = fake_gce.calls_to("POST", "/setLabels")
    assert len(writes) == 2 and writes[0].json()["labelFingerprint"] != writes[1].json()["labelFingerprint"]
    labels = fake_gce.instances[name]["labels"]
    assert labels["team"] == "ops" and labels["voicefleet-session"] == s.session_id  # nobody's write lost


async def test_a_fingerprint_stale_twice_fails_the_claim(gce, fake_gce) -> None:
    await gce.launch_idle("rsv-5")
    fake_gce.fail(412, times=2, method="POST", path_contains="/setLabels")
    with pytest.raises(MachinesError):
        await gce.adopt("rsv-5", spec())
    assert len(fake_gce.calls_to("POST", "/setLabels")) == 2


async def test_a_retired_reserve_vm_is_deleted(gce, fake_gce) -> None:
    await gce.launch_idle("rsv-6")
    await gce.retire("rsv-6")
    await gce.retire("rsv-6")  # gone already: a no-op
    assert fake_gce.instances == {} and await gce.idle_machines() == []


async def test_post_start_claims_an_idle_gce_bot_over_the_channel(fake_gce) -> None:
    env = {**fake_gce.env, "BOT_CHANNEL_URL": "wss://d.example/bots/channel", "RESERVE_MIN_IDLE": "1",
           "RESERVE_BUFFER": "0", "RESERVE_BURST": "0"}
    machines = GceWarmMachines(GceSettings.from_env(fake_gce.env), coordination=LocalCoordination(), **LIFETIME)
    app = create_app(Settings(machines="gce", bot_channel_token=TOKEN, api_key_hashes=frozenset({b"x"})), env=env,
                     machines=machines, rooms=None)
    state = app.state.voicefleet
    async with serving(app) as port:
        await state.reserve.refill()  # inserts one reserve VM at the fake
        [(name, vm)] = list(fake_gce.instances.items())
        bot_id, image = metadata(vm)["bot-machine-id"], metadata(vm)["bot-image-digest"]
        assert metadata(vm)["bot-identity"] == "gce"  # its bot proves its VM
        identity = await gce_identity(fake_gce, name)()  # the VM boots; its bot asks its metadata server
        ws = await dial_idle(state, port, bot_id, image, identity)  # the VM's bot, as a real one would
        s = spec()
        result, assignment = await claim(state.reserve, ws, s)
        assert result.created and result.machine.machine_id == name
        assert (assignment["transport"], assignment["room_url"]) == ("daily", s.room_url)
        assert vm["labels"]["voicefleet-session"] == s.session_id
        await ws.close()
    await state.aclose()


async def test_a_claimed_vm_is_looked_up_by_label_once_per_replica(gce, fake_gce) -> None:
    """The replica that claimed it goes to the VM by name at once; another replica pays one label
    look-up (the VM named for the session does not exist), then goes by name too, stop included."""
    await gce.launch_idle("rsv-3")
    fake_gce.set_status("vf-idle-rsv-3", "RUNNING")
    s = spec()
    await gce.adopt("rsv-3", s)

    def reads() -> list[str]:
        return [c.path.rsplit("/", 1)[-1] + ("?label" if "filter" in c.query else "")
                for c in fake_gce.calls if c.method in ("GET", "DELETE") and "/instances" in c.path]

    fake_gce.calls.clear()
    assert (await gce.status(s.session_id)) is not None
    assert reads() == ["vf-idle-rsv-3"]
    other_replica = GceWarmMachines(GceSettings.from_env(fake_gce.env), coordination=LocalCoordination(), **LIFETIME)
    try:
        fake_gce.calls.clear()
        assert (await other_replica.status(s.session_id)) is not None
        assert (await other_replica.status(s.session_id)) is not None
        assert await other_replica.stop(s.session_id)
        assert reads() == [f"vf-{s.session_id}", "instances?label", "vf-idle-rsv-3", "vf-idle-rsv-3"]
    finally:
        await other_replica.aclose()
    fake_gce.calls.clear()
    assert await gce.stop(s.session_id) is False  # gone: this replica asks by its name, then by label
    assert reads() == ["vf-idle-rsv-3", "instances?label"]


async def test_a_reserve_vm_outlives_its_idle_time_plus_a_whole_session(gce, fake_gce) -> None:
    """The template's maxRunDuration is sized for a cold session (max session + grace); a reserve VM
    that inherited it would be deleted by GCE mid-session once claimed after more than the grace."""
    fake_gce.template_scheduling["maxRunDuration"] = {"seconds": str(1800 + 300)}
    await gce.launch_idle("rsv-0a1c")
    scheduling = fake_gce.instances["vf-idle-rsv-0a1c"]["scheduling"]
    assert int(scheduling["maxRunDuration"]["seconds"]) == 900 + 1800 + 300
    assert scheduling["instanceTerminationAction"] == "DELETE" and scheduling["automaticRestart"] is False
