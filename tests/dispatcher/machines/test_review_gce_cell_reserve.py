"""Hostile review of the warm reserve over Compute Engine cells (dispatcher/machines/gce/cell_reserve.py,
the shared dispatcher/machines/cell_reserve.py, gce/cells.py `_located`): each test is a finding,
strict-xfail until the product is fixed. Same harness as test_gce_cell_reserve.py: the fake Compute
API holding each project's own instances and grants, a dispatcher replica built from its environment.

A VM's instance identity token names its own project, zone and name (Google signs it; "instances can
only access their own unique token": https://cloud.google.com/compute/docs/instances/verifying-instance-identity,
claims `google.compute_engine.project_id`, `zone`, `instance_name`, `instance_id`). So the token is
only as good as the dispatcher's idea of which project the bot's VM is in: that idea is what these
tests attack.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from botchannel.contract import CHANNEL_PATH, Hello, Welcome, encode, parse_frame
from dispatcher.api.state import AppState
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.base import MachinesError
from dispatcher.machines.gce.cell_reserve import GceCellWarmMachines
from dispatcher.machines.gce.settings import GceSettings
from tests.dispatcher.machines.test_contract import spec
from tests.dispatcher.machines.test_gce_cell_reserve import (  # noqa: F401 - the fake fixture
    IDLE_PREFIX,
    claimed_bot,
    dial,
    fake,
    idle_vms,
    metadata,
    replica,
    reserve_env,
)
from tests.dispatcher.machines.test_gce_cells import PROJECTS
from tests.fakes.gce import CHANNEL_AUDIENCE, FakeGce
from tests.support.cells import accept, coordination_of, spend

# ruff: noqa: F811 - the tests take the fake fixture, imported from test_gce_cell_reserve, as an argument


async def look_alike(state: AppState, fake: FakeGce, real: str, into: str) -> tuple[BotGrant, Hello]:
    """Cell `real`'s one reserve bot (a refill), and a look-alike of its VM made in cell `into`'s project
    by whoever may insert VMs there (its own admins, its CI, another deployment sharing it): a copy of the
    real VM's insert (`gcloud compute instances create vf-idle-<id> --labels voicefleet-idle=<id>`). The
    bot's credential and a hello carrying the look-alike's own identity token."""
    assert state.reserve is not None
    await spend(state, into, 1)  # `into` has fewer spare tokens: the refill inserts in `real`
    await state.reserve.refill()
    [(bot_id, cell)] = idle_vms(fake).items()
    assert cell == real
    name = IDLE_PREFIX + bot_id
    vm = copy.deepcopy(fake.projects[PROJECTS[real]].instances[name])
    vm["status"] = "RUNNING"
    fake.projects[PROJECTS[into]].instances[name] = vm
    fake.projects[PROJECTS[real]].set_status(name, "RUNNING")
    forged = fake.projects[PROJECTS[into]].identity_token(name, CHANNEL_AUDIENCE)
    return BotGrant("idle", bot_id, int(time.time()) + 60), Hello(machine_id=bot_id, identity=forged)


async def test_a_listing_never_moves_a_bot_to_another_project_holding_a_look_alike_vm(fake: FakeGce) -> None:
    """cell_reserve.py `idle_machines` sets `_bot_cells[bot] = cell` for every idle VM each cell lists, in
    GCE_CELLS' order, over what the replica inserted itself: a VM named `vf-idle-<id>` and labelled
    `voicefleet-idle` in project b, listed after a's, moves bot <id> to b. `_located` then expects b's
    project in the hello's token, so a bot in b's look-alike VM (holding the credential read from a's
    VM's metadata, or a's bot id from the logs) is admitted as the reserve bot, and its claim relabels
    b's VM (`adopt` goes to `_bot_cells`). docs/operations.md says "a VM of that name in another project
    is refused". Every reserve refill lists: the window is always open. Fix: a cell known from an insert
    or a proved hello is never overwritten by a listing; a bot id listed in two cells is reported and
    offered in neither; bind the token's `instance_id` to the insert's `targetId`."""
    async with replica(reserve_env(fake)) as (state, _):
        grant, hello = await look_alike(state, fake, "a", into="b")
        identity = state.machines.identity
        assert await identity.refusal(grant, hello) is not None  # before
        await state.machines.idle_machines()  # type: ignore[attr-defined] # the reserve's next listing
        refused = await identity.refusal(grant, hello)
        assert refused is not None, "b's look-alike VM passed for reserve bot of a"


async def test_a_replica_that_did_not_insert_the_bot_never_takes_a_look_alike_in_an_earlier_cell(
        fake: FakeGce) -> None:
    """Bots dial any replica behind the load balancer, so most hellos reach one that did not insert the
    bot: `_cell_of_bot` asks the cells in GCE_CELLS' order (`holds_idle`: a VM of that name with any
    `voicefleet-idle` label) and takes the first that answers yes. A look-alike VM in cell a (listed
    first) of a bot inserted in b makes a the bot's cell at that replica: a's token passes. Fix: ask
    every cell; a name held in two projects is refused (and logged), not the first one taken; and
    compare the label's value with the bot id."""
    env = reserve_env(fake)
    async with replica(env) as (state, _):
        grant, hello = await look_alike(state, fake, "b", into="a")
        other = GceCellWarmMachines(GceSettings.from_env(env), coordination_of(state), max_idle_seconds=900.0,
                                    max_session_seconds=1800)
        try:
            refused = await other.identity.refusal(grant, hello)
            assert refused is not None, "a's look-alike VM passed for reserve bot of b at another replica"
        finally:
            await other.aclose()


async def test_a_claim_in_a_project_that_is_down_starts_cold_in_another(fake: FakeGce) -> None:
    """cell_reserve.py `adopt` records the session's cell (`_holder`) before `GceWarmMachines.adopt`'s
    GET and setLabels. With the dispatcher's grant in project a gone (every call 403), the GET fails,
    nothing is relabelled, claim.py retires the bot and starts cold; the cold launch finds the record
    (`earlier`), so it may not move, and a's 403 fails the start. Without the claim, a cold start
    homed in a denied project moves to the other (gce/cells.py `_turned_away`: 403). Fix: record the
    holder only once the relabel is sent, or let a claim whose GET failed (nothing written) drop it."""
    async with replica(reserve_env(fake)) as (state, port):
        assert state.reserve is not None
        await spend(state, "b", 1)
        await state.reserve.refill()
        [(bot_id, cell)] = idle_vms(fake).items()
        assert cell == "a"
        ws = await dial(fake, state, port, bot_id, "a")
        fake.projects[PROJECTS["a"]].denied = True  # the dispatcher's grant in a is gone
        accepting = asyncio.create_task(accept(ws))
        try:
            result = await state.reserve.launch(spec())
        except MachinesError as exc:
            pytest.fail(f"the start failed in the project that is down: {exc.reason}: {exc}")
        finally:
            await accepting
            fake.projects[PROJECTS["a"]].denied = False
            await ws.close()
        assert result.created and not result.claimed
        assert result.machine.machine_id in fake.projects[PROJECTS["b"]].instances


async def test_refills_leave_a_projects_room_for_a_cold_start(fake: FakeGce) -> None:
    """docs/reserve.md: "with GCE_CELLS from a project the same way (its `max_instances` counts its reserve
    VMs too)". Refills keep one insert token for a cold start in each project but not one slot of
    `max_instances` (`Cells.refillable`: `running < room`). With max_instances 2 and a reserve of 4, the
    refills fill both projects; a start no bot can serve yet (they boot; or of another release or
    transport) is refused, every open cell full. Fix: refill only while `running + 1 < room`."""
    env = reserve_env(fake, idle=4)
    env["GCE_CELLS"] = json.dumps([{**cell, "max_instances": 2} for cell in json.loads(env["GCE_CELLS"])])
    async with replica(env) as (state, _):
        assert state.reserve is not None
        await state.reserve.refill()
        launched = sorted(idle_vms(fake).values())
        assert launched  # the reserve got some of the room
        try:
            result = await state.reserve.launch(spec())
        except MachinesError as exc:
            pytest.fail(f"cold start refused after refills ({launched}): {exc.reason}: {exc}")
        assert result.created and not result.claimed


async def test_a_warming_vm_forgotten_with_its_project_is_still_deleted(fake: FakeGce) -> None:
    """warming.py skips `retire` for a bot `in_lost_cell`. A project is `unreadable` when its listing
    failed (one throttled or refused GET), which says nothing of its DELETE: the replica inserted the
    VM and knows its name and project, and GCE's `retire` needs no listing. Left alone, the VM runs
    while its replacement boots elsewhere, until its own maxRunDuration (RESERVE_MAX_IDLE_SECONDS +
    MAX_SESSION_SECONDS + grace: gce/reserve.py), or an idle sweep once the project answers again.
    Fix: retire (DELETE by name) a forgotten bot this replica inserted, in the background."""
    async with replica(reserve_env(fake, idle=2, burst=4)) as (state, _):
        reserve = state.reserve
        assert reserve is not None
        await reserve.refill()  # one in each project
        await spend(state, "a", 1)
        vms = idle_vms(fake)
        [in_b] = [bot_id for bot_id, cell in vms.items() if cell == "b"]
        # b's reads fail (a throttled or refused list); its writes would still be served.
        fake.fail(403, method="GET", path_contains=f"/projects/{PROJECTS['b']}/", times=1000)
        cold = reserve.planning.sizer.cold.mean
        started = reserve._clock()
        reserve._clock = lambda: started + cold * 2
        await reserve.refill()  # b's late bot is forgotten, its replacement inserted in a
        assert in_b not in reserve._warming._launched
        await reserve._retirements.aclose()  # background retirements done
        fake.reset_knobs()
        assert IDLE_PREFIX + in_b not in fake.projects[PROJECTS["b"]].instances, \
            "the forgotten bot's VM was never deleted"


async def test_a_claimed_reserve_bot_may_dial_again_after_a_drop(fake: FakeGce) -> None:
    """A claimed reserve bot keeps its idle credential; after a drop (a network blip, a dispatcher
    replica's rollout: bot/channel_session.py dials again) its hello names its session, and admission.py
    admits "a claimed reserve bot reconnecting". But bots.py checks the machine's identity first, and
    gce/cells.py `_located` finds an idle grant's project only through `_cell_of_bot`: the claim popped the
    bot from `_bot_cells` (cell_reserve.py `adopt`), and `holds_idle` answers no for a VM whose idle
    label the claim removed, in every project. So the hello is refused and the session's bot is gone
    (with one project, gce/identity.py checks GCE_PROJECT's and no look-up is needed: it dials again).
    Fix: `_located` for an idle grant also finds a claimed VM of that name (its session label), or keep
    the bot's cell (in the store, beside the session's) once claimed."""
    async with replica(reserve_env(fake)) as (state, port):
        bot_id, cell, s, ws = await claimed_bot(fake, state, port)
        await ws.close()  # the channel drops; the bot dials again, as bot/channel_session.py does
        project = fake.projects[PROJECTS[cell]]
        name = IDLE_PREFIX + bot_id
        items = metadata(project.instances[name])
        again = await connect(f"ws://127.0.0.1:{port}{CHANNEL_PATH}",
                              additional_headers={"Authorization": f"Bearer {items['bot-channel-token']}"}, proxy=None)
        try:
            await again.send(encode(Hello(machine_id=bot_id, image=items["bot-image-digest"], capabilities=("daily",),
                                          session_id=s.session_id,
                                          # a fresh token, as the metadata server mints one per request
                                          identity=project.identity_token(name, CHANNEL_AUDIENCE, lifetime=3599))))
            try:
                answer = parse_frame(await again.recv())
            except ConnectionClosed as closed:
                pytest.fail(f"the claimed bot's hello was refused: {closed.rcvd}")
            assert isinstance(answer, Welcome), answer
        finally:
            await again.close()
