"""Azure Container Instances with a warm reserve: idle groups tagged idle, re-tagged with the session on
claim by ARM's tags-only PATCH, so any replica's stateless look-up finds a claimed group; a retirement
never deletes a group a session claimed, whichever replica listed it idle and whenever the claim landed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from dispatcher.app import create_app
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.credentials import BotCredentials
from dispatcher.channel.identity import Unverified
from dispatcher.factory import build_machines
from dispatcher.machines.aci.groups import group_body
from dispatcher.machines.aci.reserve import AciWarmMachines
from dispatcher.machines.base import MachinesError
from dispatcher.observability.metrics import Metrics
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.prices import hot_dollars_per_month
from dispatcher.reserve.reserve import Reserve
from dispatcher.settings import Settings
from dispatcher.store.client import StoreSettings
from dispatcher.store.local import LocalCoordination
from dispatcher.store.redis_coordination import RedisCoordination
from stacks.azure.launch_policy import launch_rule
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.arm_aci import FakeArmAci
from tests.support.redis_server import RedisServer
from tests.support.reserve_bot import claimed_once, seen_by_another_replica

CHANNEL = {"BOT_CHANNEL_URL": "wss://d.example/bots/channel"}


def replica(fake: FakeArmAci, **env: str) -> AciWarmMachines:
    """A dispatcher replica's provider: nothing shared with another but ARM."""
    return AciWarmMachines.from_env({**fake.env, **CHANNEL, "ACI_RETRY_DEADLINE_SECONDS": "3", **env},
                                    LocalCoordination())


@pytest.fixture
async def aci(fake_aci: FakeArmAci) -> AsyncIterator[AciWarmMachines]:
    machines = replica(fake_aci)
    yield machines
    await machines.aclose()


async def test_a_reserve_group_is_tagged_idle_and_carries_its_credential_and_no_session(
        aci: AciWarmMachines, fake_aci: FakeArmAci) -> None:
    await aci.launch_idle("rsv-0a1b", "idle-credential-for-rsv-0a1b")
    group = fake_aci.groups["vf-idle-rsv-0a1b"]
    assert group["tags"]["voicefleet-idle"] == "rsv-0a1b" and "voicefleet-session" not in group["tags"]
    assert group["properties"]["restartPolicy"] == "Never"
    values = fake_aci.secure["vf-idle-rsv-0a1b"]
    assert values["BOT_MACHINE_ID"] == "rsv-0a1b" and values["BOT_CHANNEL_TOKEN"] == "idle-credential-for-rsv-0a1b"
    assert values["BOT_CHANNEL_URL"] == CHANNEL["BOT_CHANNEL_URL"] and values["BOT_IMAGE_DIGEST"] == aci.bot_image
    assert not {"VOICEFLEET_SESSION_ID", "DAILY_TOKEN", "VOICEFLEET_BODY"} & set(values)
    shown = str(await aci._get("vf-idle-rsv-0a1b"))
    assert "idle-credential-for-rsv-0a1b" not in shown  # a secure value: ARM never returns it
    fake_aci.set_state("vf-idle-rsv-0a1b", "Running")
    assert [m.bot_id for m in await aci.idle_machines()] == ["rsv-0a1b"]
    assert await aci.list() == []  # not a session: admission does not count it


async def test_a_claim_retags_the_group_so_any_replica_finds_the_session(
        aci: AciWarmMachines, fake_aci: FakeArmAci) -> None:
    await aci.launch_idle("rsv-2")
    fake_aci.set_state("vf-idle-rsv-2", "Running")
    fake_aci.groups["vf-idle-rsv-2"]["tags"]["voicefleet-created"] = "1700000000"  # idle for long
    s = spec()
    before = time.time()
    adopted = await aci.adopt("rsv-2", s)
    assert adopted.created and adopted.claimed and adopted.machine.session_id == s.session_id
    assert adopted.machine.created_at >= int(before)  # the session's age counts from the claim (the reaper)
    [patch] = fake_aci.calls_to("PATCH", "/containerGroups/vf-idle-rsv-2")
    assert set(patch.json()) == {"tags"}  # ARM's tags-only update: the container runs on
    tags = fake_aci.groups["vf-idle-rsv-2"]["tags"]
    assert "voicefleet-idle" not in tags and tags["voicefleet-session"] == s.session_id
    assert fake_aci.created == ["vf-idle-rsv-2"]  # no group made for the session
    await seen_by_another_replica(replica(fake_aci), s, adopted)
    assert fake_aci.standing() == {}  # deleted after its session: never reused
    gone = await aci.status(s.session_id)
    assert gone is None or not gone.state.is_active  # gone, or Deleting till its container has stopped


async def test_a_bot_is_claimed_once(aci: AciWarmMachines, fake_aci: FakeArmAci) -> None:
    await aci.launch_idle("rsv-3")
    fake_aci.set_state("vf-idle-rsv-3", "Running")
    await claimed_once(aci, "rsv-3", spec)


async def test_an_idle_group_that_ended_is_listed_for_the_sweep_with_its_exit_code(
        aci: AciWarmMachines, fake_aci: FakeArmAci) -> None:
    await aci.launch_idle("rsv-4")
    fake_aci.set_state("vf-idle-rsv-4", "Terminated", 2)  # its bot failed before its hello
    assert [m.bot_id for m in await aci.idle_machines()] == ["rsv-4"]  # a Terminated group keeps its slot
    assert aci.exit_detail("rsv-4") == "exit code 2"
    with pytest.raises(MachinesError) as gone:
        await aci.adopt("rsv-4", spec())
    assert gone.value.reason == "reserve_bot_gone"
    await aci.retire("rsv-4")
    await aci.retire("rsv-4")  # gone already: a no-op
    assert fake_aci.standing() == {} and await aci.idle_machines() == []


async def test_reserve_creates_and_deletes_spend_acis_create_budget(fake_aci: FakeArmAci) -> None:
    machines = replica(fake_aci, ACI_CREATE_RATE="0.01", ACI_CREATE_BURST="2", ACI_CREATE_MAX_WAIT="0")
    try:
        await machines.launch_idle("rsv-5")
        await machines.retire("rsv-5")  # the create and the delete: ACI's budget counts both
        with pytest.raises(MachinesError) as caught:
            await machines.launch(spec())
    finally:
        await machines.aclose()
    assert caught.value.reason == "aci_rate_limited"


async def test_the_fakes_tags_update_follows_arm(aci: AciWarmMachines, fake_aci: FakeArmAci) -> None:
    """ContainerGroups_Update's body is ARM's `Resource`: its tags replace the whole set, a body without
    them leaves them, and nothing of the group's properties can be changed through it."""
    await aci.launch_idle("rsv-6")
    path = "/vf-idle-rsv-6"
    assert (await aci._request("PATCH", path, json={"tags": {"a": "1"}})).status_code == 200
    assert fake_aci.groups["vf-idle-rsv-6"]["tags"] == {"a": "1"}
    assert (await aci._request("PATCH", path, json={"location": fake_aci.env["AZURE_LOCATION"]})).status_code == 200
    assert fake_aci.groups["vf-idle-rsv-6"]["tags"] == {"a": "1"}
    refused = await aci._request("PATCH", path, json={"properties": {"restartPolicy": "Always"}})
    assert refused.status_code == 400
    assert (await aci._request("PATCH", "/vf-none", json={"tags": {}})).status_code == 404


async def test_a_channel_makes_the_aci_provider_hold_a_reserve_priced_by_its_size(fake_aci: FakeArmAci) -> None:
    env = {**fake_aci.env, **CHANNEL, "ACI_CPU": "2", "ACI_MEMORY_GB": "4"}
    settings = Settings(machines="aci", transports=("webrtc",))
    warm, cold = build_machines(settings, env, LocalCoordination()), build_machines(settings, fake_aci.env,
                                                                                    LocalCoordination())
    try:
        assert isinstance(warm, AciWarmMachines) and warm.transport == "webrtc"
        assert hot_dollars_per_month(warm, env) == pytest.approx(730 * 3600 * (2 * 0.0000135 + 4 * 0.0000015), 0.01)
        assert not isinstance(cold, AciWarmMachines)  # no channel to dial: every start is cold
    finally:
        await warm.aclose()
        await cold.aclose()


async def test_a_dead_dispatchers_idle_groups_are_deleted_by_the_next_ones_sweep_past_their_idle_age(
        fake_aci: FakeArmAci) -> None:
    dead = replica(fake_aci)
    for bot_id in ("old", "ended", "young"):
        await dead.launch_idle(bot_id)
    await dead.aclose()  # its dispatcher is gone: nobody will retire these
    for name in ("vf-idle-old", "vf-idle-ended"):
        fake_aci.groups[name]["tags"]["voicefleet-created"] = "1000"  # long ago
    fake_aci.set_state("vf-idle-old", "Running")
    fake_aci.set_state("vf-idle-ended", "Terminated", 0)  # its bot exited: the group holds its quota slot
    fake_aci.set_state("vf-idle-young", "Running")
    env = {**fake_aci.env, **CHANNEL, "RESERVE_MAX_IDLE_SECONDS": "900"}
    app = create_app(Settings(machines="aci", bot_channel_token="c" * 40, api_key_hashes=frozenset({b"x"})), env=env,
                     machines=replica(fake_aci), rooms=None)
    try:
        assert await app.state.voicefleet.reserve.sweep() == 2
    finally:
        await app.state.voicefleet.aclose()
    assert list(fake_aci.standing()) == ["vf-idle-young"]


async def test_under_the_stacks_launch_policy_arm_admits_the_providers_creates_and_claim_and_no_forgery(
        fake_aci: FakeArmAci) -> None:
    """The fake evaluates the Azure stack's Deny rule on every PUT and PATCH body as sent (the worst
    case: ARM may evaluate a PATCH's body alone): the reserve's create, its tags-only claim and a cold
    session's create pass; the same group with a command does not."""
    subnet = f"/subscriptions/{fake_aci.env['AZURE_SUBSCRIPTION_ID']}/resourceGroups/vf/providers/" \
             "Microsoft.Network/virtualNetworks/vf/subnets/bots"
    identity = "/subscriptions/x/resourceGroups/vf/providers/Microsoft.ManagedIdentity/userAssignedIdentities/vf-bot"
    fake_aci.policy = launch_rule(subnet, (fake_aci.env["ACI_BOT_IMAGE"],))  # the one release's image
    machines = replica(fake_aci, ACI_SUBNET_ID=subnet, ACI_REGISTRY_IDENTITY=identity)
    try:
        await machines.launch_idle("rsv-7", "credential")
        fake_aci.set_state("vf-idle-rsv-7", "Running")
        assert (await machines.adopt("rsv-7", spec())).claimed
        assert (await machines.launch(spec())).created
        forged = group_body(machines.settings, {}, {})
        forged["properties"]["containers"][0]["properties"]["command"] = ["sh", "-c", "id"]
        refused = await machines._request("PUT", "/vf-forged", json=forged)
    finally:
        await machines.aclose()
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "RequestDisallowedByPolicy"


async def test_an_idle_group_of_rotated_out_bot_secrets_is_refused_and_swept_at_once(fake_aci: FakeArmAci) -> None:
    """A reserve group carries its bot secrets' versions (digested URIs, never values): after a
    rotation (a new ACI_BOT_SECRETS version), a group of the old keys cannot be claimed and is listed
    as old as can be, so the reserve's sweep retires it as it does a bot past its idle age."""
    vault = "https://vf.vault.azure.net/secrets/daily-api-key"
    old, new = replica(fake_aci, ACI_BOT_SECRETS=f"DAILY_API_KEY={vault}/v1"), \
        replica(fake_aci, ACI_BOT_SECRETS=f"DAILY_API_KEY={vault}/v2")
    try:
        old._bot_secrets = new._bot_secrets = None  # no Key Vault here: the versions alone are tagged
        await old.launch_idle("rsv-8")
        await new.launch_idle("rsv-9")
        for name in ("vf-idle-rsv-8", "vf-idle-rsv-9"):
            fake_aci.set_state(name, "Running")
        assert vault not in str(fake_aci.groups["vf-idle-rsv-8"]["tags"])
        listed = {m.bot_id: m.created_at for m in await new.idle_machines()}
        assert listed["rsv-8"] == 0.0 and listed["rsv-9"] > 0
        with pytest.raises(MachinesError) as stale:
            await new.adopt("rsv-8", spec())
        assert stale.value.reason == "reserve_bot_stale"
        assert (await new.adopt("rsv-9", spec())).claimed
    finally:
        await old.aclose()
        await new.aclose()


async def test_another_deployment_whose_prefix_extends_this_ones_is_not_this_ones(fake_aci: FakeArmAci) -> None:
    """`vf` and `vf-idle` share a resource group: neither lists, finds or sweeps the other's groups,
    though `vf-idle-<session>` reads like a `vf` reserve group's name."""
    mine, theirs = replica(fake_aci), replica(fake_aci, ACI_GROUP_PREFIX="vf-idle")
    try:
        session = spec()
        await theirs.launch(session)
        await theirs.launch_idle("rsv-a")
        fake_aci.set_state("vf-idle-idle-rsv-a", "Running")
        assert (await theirs.adopt("rsv-a", claimed := spec())).claimed
        await mine.launch_idle("rsv-b")
        assert [m.session_id for m in await mine.list()] == []
        assert await mine.status(session.session_id) is None and await mine.status(claimed.session_id) is None
        assert [m.bot_id for m in await mine.idle_machines()] == ["rsv-b"]
        assert {m.session_id for m in await theirs.list()} == {session.session_id, claimed.session_id}
    finally:
        await mine.aclose()
        await theirs.aclose()


async def test_a_retirement_after_another_replica_claimed_the_group_leaves_the_session_running(
        fake_aci: FakeArmAci) -> None:
    """The replica that made (or listed) a reserve group retires it by its bot id, on a view older than
    another replica's claim: the group is a session's now, and stays."""
    maker, claimer = replica(fake_aci), replica(fake_aci)
    try:
        await maker.launch_idle("rsv-taken")
        fake_aci.set_state("vf-idle-rsv-taken", "Running")
        claimed = spec()
        await claimer.adopt("rsv-taken", claimed)
        await maker.retire("rsv-taken")  # the sweep's or the planner's, decided before the claim
    finally:
        await maker.aclose()
        await claimer.aclose()
    group = fake_aci.standing().get("vf-idle-rsv-taken")
    assert group is not None, "the claimed session's group was deleted"
    assert group["tags"]["voicefleet-session"] == claimed.session_id
    assert not fake_aci.calls_to("DELETE", "/containerGroups/vf-idle-rsv-taken")


async def test_a_claim_that_failed_after_its_re_tag_still_retires_the_group_it_claimed(
        aci: AciWarmMachines, fake_aci: FakeArmAci) -> None:
    """At the replica whose claim re-tagged the group, a failure after it (over cells: the session was
    launched in another subscription first) retires the group: it carries the session this replica gave it."""
    await aci.launch_idle("rsv-own")
    fake_aci.set_state("vf-idle-rsv-own", "Running")
    await aci.adopt("rsv-own", spec())
    await aci.retire("rsv-own")
    assert "vf-idle-rsv-own" not in fake_aci.standing()


@pytest.fixture
async def shared(store: RedisServer) -> AsyncIterator[tuple[RedisCoordination, RedisCoordination]]:
    """Two replicas' coordination on one store (a real redis-server): the bot's holder's, the sweeper's."""
    pair = [RedisCoordination(StoreSettings(url=store.url, password=store.password, replica_id=f"r-{name}",
                                            message_secret=store.message_secret, timeout_seconds=5.0))
            for name in ("holder", "sweeper")]
    yield pair[0], pair[1]
    for coordination in pair:
        await coordination.aclose()


def sweeping(fake: FakeArmAci, coordination: RedisCoordination) -> tuple[Reserve, AciWarmMachines]:
    """A replica whose reserve sweeps reserve groups idle past 900 s, holding none of their bots' channels."""
    machines = replica(fake)
    channels = BotChannels(BotCredentials("t" * 40), claims=coordination.claims, identity=Unverified("test"))
    reserve = Reserve(ReserveSettings.from_env({"RESERVE_MAX_IDLE_SECONDS": "900"}, "aci"), machines, channels,
                      ReserveMetrics(Metrics("aci").registry, "aci"), coordination=coordination)
    return reserve, machines


async def old_idle_group(fake: FakeArmAci, holder: AciWarmMachines, bot_id: str) -> None:
    await holder.launch_idle(bot_id)
    fake.set_state(f"vf-idle-{bot_id}", "Running")
    fake.groups[f"vf-idle-{bot_id}"]["tags"]["voicefleet-created"] = "1000"  # idle past its age


async def test_a_claim_landing_between_the_sweeps_listing_and_its_delete_never_loses_its_group(
        fake_aci: FakeArmAci, shared: tuple[RedisCoordination, RedisCoordination]) -> None:
    """Another replica's sweep lists a reserve group idle past its age; just before its delete is sent,
    the replica holding the bot's channel claims it for a session, as a warm claim does (the bot's claim
    record, then the re-tag). ARM deletes unconditionally, so the sweep took the bot's claim record first:
    the claim is refused before its bot is asked (that session starts on another bot, or cold), and the
    group deleted serves no session."""
    holder_store, sweeper_store = shared
    holder = replica(fake_aci)
    reserve, sweeper = sweeping(fake_aci, sweeper_store)
    session, adopted = spec(), []
    delete = sweeper._delete

    async def claimed_just_before(name: str) -> bool:
        if await holder_store.claims.claim("rsv-old", session.session_id):
            adopted.append(await holder.adopt("rsv-old", session))
        return await delete(name)

    sweeper._delete = claimed_just_before  # type: ignore[method-assign]
    try:
        await old_idle_group(fake_aci, holder, "rsv-old")
        assert await reserve.sweep() == 1
    finally:
        await reserve.aclose()
        await sweeper.aclose()
        await holder.aclose()
    assert adopted == [], "a session was given the group the sweep then deleted"
    assert "vf-idle-rsv-old" not in fake_aci.standing()


async def test_a_bot_claimed_before_the_sweep_keeps_its_group_while_its_re_tag_is_on_the_way(
        fake_aci: FakeArmAci, shared: tuple[RedisCoordination, RedisCoordination]) -> None:
    """The holder's claim recorded the bot and is asking it when another replica's sweep lists its group,
    still tagged idle, past its age: the sweep leaves it, and the re-tag that follows makes it the session's."""
    holder_store, sweeper_store = shared
    holder = replica(fake_aci)
    reserve, sweeper = sweeping(fake_aci, sweeper_store)
    session = spec()
    try:
        await old_idle_group(fake_aci, holder, "rsv-asked")
        assert await holder_store.claims.claim("rsv-asked", session.session_id)  # the bot is being assigned
        assert await reserve.sweep() == 0
        adopted = await holder.adopt("rsv-asked", session)
    finally:
        await reserve.aclose()
        await sweeper.aclose()
        await holder.aclose()
    assert adopted.machine.session_id == session.session_id
    assert fake_aci.standing()["vf-idle-rsv-asked"]["tags"]["voicefleet-session"] == session.session_id
