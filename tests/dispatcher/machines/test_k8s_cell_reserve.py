"""The warm reserve over K8S_CELLS, against two fake API servers, each with its own dispatcher token, pods,
quota and TokenReviews: a dispatcher built from its environment runs its reserve over the clusters, takes
its refills' tokens from the cells' own buckets (`k8s:<cell>`, the cold starts' too), sends none to a
cluster that throttles, is over its quota or cannot be reached, has each reserve bot's token reviewed by
its own pod's cluster alone, and its bots are claimed by sessions, each once, at whichever replica they
dialled. A cluster that cannot be read takes only its own idle pods with it.

The cells' create rate here is 0.01/s (a burst of 3 or 4): a bucket's tokens are what the test spent,
not what the clock gave back while it ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from botchannel.contract import (
    CHANNEL_PATH,
    CHANNEL_TOKEN_VARIABLE,
    IMAGE_VARIABLE,
    Hello,
    Welcome,
    encode,
    parse_frame,
)
from dispatcher.api.state import AppState
from dispatcher.channel.credentials import BotGrant
from dispatcher.factory import configuration_problems
from dispatcher.machines.base import LaunchSpec, MachinesError, WarmMachines
from dispatcher.machines.bot_environment import TRANSPORT
from dispatcher.machines.k8s.cell_reserve import K8sCellWarmMachines
from dispatcher.machines.k8s.cells import QUOTA, THROTTLED, UNREACHABLE, K8sCellMachines
from dispatcher.machines.k8s.settings import K8sSettings
from dispatcher.outbound.ratelimit import Rate
from dispatcher.settings.sources import resolve
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_contract import spec
from tests.dispatcher.machines.test_k8s_cells import CHANNEL, cells_env
from tests.fakes.k8s import FakeKubernetes
from tests.support.cells import (
    accept,
    check_a_lost_cell_takes_only_its_own_bots,
    check_cold_cells,
    check_met_elsewhere_and_claimed_once,
    check_refills_go_where_tokens_are_left,
    claimed_at_two_replicas,
    claimed_warm_bot,
    coordination_of,
    reserve_replica,
    retire_after_anothers_claim,
    spend,
)
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer

TOKEN = "k" * 40
IDLE_PREFIX = "vf-idle-"


@pytest.fixture(autouse=True)
def slow_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each cell's bucket at 0.01/s with a burst of 3 (the module says why)."""
    monkeypatch.setattr("dispatcher.machines.k8s.cells.CREATE_RATE", Rate(per_second=0.01, burst=3, max_wait=2.0))


def burst(monkeypatch: pytest.MonkeyPatch, tokens: int) -> None:
    monkeypatch.setattr("dispatcher.machines.k8s.cells.CREATE_RATE", Rate(per_second=0.01, burst=tokens, max_wait=2.0))


def reserve_env(a: FakeKubernetes, b: FakeKubernetes, idle: int = 1, **extra: Any) -> dict[str, str]:
    return {**cells_env(a, b, **extra), "RESERVE_MIN_IDLE": str(idle), "RESERVE_BUFFER": "0", "RESERVE_BURST": "0"}


def replica(env: dict[str, str]) -> contextlib.AbstractAsyncContextManager[tuple[AppState, int]]:
    """A dispatcher replica built from `env` (its machines too, as `python -m dispatcher` builds them)."""
    return reserve_replica("k8s", env, TOKEN)


def clusters(a: FakeKubernetes, b: FakeKubernetes) -> dict[str, FakeKubernetes]:
    return {"a": a, "b": b}


def idle_pods(a: FakeKubernetes, b: FakeKubernetes) -> dict[str, str]:
    """Reserve bot id → the cell whose cluster holds its pod, over both clusters."""
    return {name.removeprefix(IDLE_PREFIX): cell for cell, fake in clusters(a, b).items()
            for name in fake.standing() if name.startswith(IDLE_PREFIX)}


def creates_in(fake: FakeKubernetes) -> int:
    return len(fake.calls_to("POST", "/pods"))


def views(state: AppState) -> dict[str, Any]:
    assert isinstance(state.machines, K8sCellMachines)
    return {view.name: view for view in state.machines.views()}


def other_replica(env: dict[str, str], coordination: Any) -> K8sCellWarmMachines:
    """Another replica's provider, sharing `coordination` (the store) and nothing else."""
    return K8sCellWarmMachines(K8sSettings.from_env(env), coordination, channel_url=CHANNEL, transport="daily",
                               max_idle_seconds=900, max_session_seconds=600)


def grant(bot_id: str) -> BotGrant:
    return BotGrant("idle", bot_id, int(time.time()) + 60)


def hello(fake: FakeKubernetes, bot_id: str, session_id: str | None = None) -> Hello:
    """The hello of the bot of `fake`'s pod `vf-idle-<bot_id>`, with that pod's projected token."""
    return Hello(machine_id=bot_id, identity=fake.token_of(IDLE_PREFIX + bot_id), session_id=session_id)


async def dial(fake: FakeKubernetes, state: AppState, port: int, bot_id: str) -> ClientConnection:
    """The idle pod's bot dials the replica as a real one would, with its own credential, image and
    transport from its pod's env and its pod's projected token; returns once the replica holds it idle."""
    name = IDLE_PREFIX + bot_id
    fake.set_phase(name, "Running")
    env = fake.envs[name]
    ws = await connect(f"ws://127.0.0.1:{port}{CHANNEL_PATH}",
                       additional_headers={"Authorization": f"Bearer {env[CHANNEL_TOKEN_VARIABLE]}"}, proxy=None)
    await ws.send(encode(Hello(machine_id=bot_id, image=env[IMAGE_VARIABLE], capabilities=(env[TRANSPORT],),
                               identity=fake.token_of(name))))
    assert isinstance(parse_frame(await ws.recv()), Welcome)
    assert await state.channels.wait_until(lambda: bot_id in {link.machine_id for link in state.channels.idle()}, 10)
    return ws


async def claimed_bot(a: FakeKubernetes, b: FakeKubernetes, state: AppState,
                      port: int) -> tuple[str, str, LaunchSpec, ClientConnection]:
    """The reserve's one bot, refilled, dialled in and claimed by a session: its id, cell, session and channel."""
    return await claimed_warm_bot(state, port, lambda: idle_pods(a, b),
                                  lambda bot_id, cell: dial(clusters(a, b)[cell], state, port, bot_id))


async def warm_in_a(state: AppState) -> str:
    """One reserve bot refilled in cell a (b has fewer spare tokens, so the refill chooses a): its id."""
    assert state.reserve is not None
    await spend(state, "b", 1)
    await state.reserve.refill()
    machines = state.machines
    assert isinstance(machines, K8sCellWarmMachines)
    [bot_id] = [bot for bot, cell in machines._bot_cells.items() if cell == "a"]
    return bot_id


async def look_alike_in_b(machines: Any, b: FakeKubernetes, bot_id: str) -> None:
    """Whoever may create pods in cluster b creates one of the same name and labels there (its own uid and
    projected token, b's), running: here through a replica's own provider for b, which writes them alike."""
    await machines._warm["b"].run_idle(bot_id, "not-the-bots-credential")
    b.set_phase(IDLE_PREFIX + bot_id, "Running")


async def test_k8s_mode_with_cells_and_a_channel_holds_the_reserve_over_them(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    env = cells_env(fake_k8s, fake_k8s_cell)
    await check_cold_cells("k8s", K8sCellMachines, {k: v for k, v in env.items() if k != "BOT_CHANNEL_URL"})
    await check_cold_cells("k8s", K8sCellWarmMachines, env, warm=True)


@pytest.mark.parametrize("reserve", [{}, {"RESERVE_MIN_IDLE": "2"}, {"RESERVE_MAX_IDLE": "5"},
                                     {"VOICEFLEET_SIZE": "medium", "RESERVE_MIN_IDLE": "3"},
                                     {"RESERVE_SCHEDULE": "09:00-17:00=3"}])
def test_a_warm_reserve_set_beside_cells_is_taken_at_start(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes, reserve: dict[str, str]) -> None:
    base = {**cells_env(fake_k8s, fake_k8s_cell), "BOT_CHANNEL_TOKEN": "t" * 32, "DAILY_API_KEY": "k",
            "REDIS_URL": "redis://127.0.0.1:1"}
    problems = configuration_problems(resolve({**base, **reserve}).env)  # as the dispatcher's start reads them
    assert [problem for problem in problems if "K8S_CELLS" in problem or "RESERVE" in problem] == [], problems


async def test_a_start_with_cells_claims_a_warm_bot_in_its_cell(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    env = reserve_env(fake_k8s, fake_k8s_cell)
    async with replica(env) as (state, port):
        assert isinstance(state.machines, K8sCellWarmMachines) and isinstance(state.machines, WarmMachines)
        bot_id, cell, s, ws = await claimed_bot(fake_k8s, fake_k8s_cell, state, port)
        fake = clusters(fake_k8s, fake_k8s_cell)[cell]
        labels = fake.pods[IDLE_PREFIX + bot_id]["metadata"]["labels"]
        assert labels["voicefleet.io/state"] == "session" and labels["voicefleet.io/session"] == s.session_id
        assert [n for n in fake.created if s.session_id in n] == []  # warm: no pod made for the session
        assert views(state)[cell].running == 1  # a session's pod now
        await check_met_elsewhere_and_claimed_once(state, other_replica(env, coordination_of(state)), bot_id,
                                                   s.session_id, IDLE_PREFIX + bot_id)
        await ws.close()


async def test_refills_take_the_cells_own_tokens_and_go_where_some_are_left(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    async with replica(reserve_env(fake_k8s, fake_k8s_cell, idle=2)) as (state, _):
        await check_refills_go_where_tokens_are_left(state, lambda: list(idle_pods(fake_k8s, fake_k8s_cell).values()),
                                                     lambda: creates_in(fake_k8s))


@pytest.mark.parametrize("refusal", ["throttled", "quota", "unreachable"])
async def test_a_refill_the_cluster_turns_away_drains_it_and_the_next_goes_elsewhere(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes, refusal: str) -> None:
    dead = {"a_extra": {"api_url": f"http://127.0.0.1:{free_port()}"}} if refusal == "unreachable" else {}
    async with replica(reserve_env(fake_k8s, fake_k8s_cell, **dead)) as (state, _):
        assert state.reserve is not None
        await spend(state, "b", 1)  # b has fewer spare tokens than a: a refill would choose a
        if refusal == "throttled":
            fake_k8s.fail(429, method="POST", path_contains="/pods", times=5, retry_after=1)
        elif refusal == "quota":
            fake_k8s.quota = 0
        await state.reserve.refill()  # turned away in a: a is drained, nothing made
        reason = {"throttled": THROTTLED, "quota": QUOTA, "unreachable": UNREACHABLE}[refusal]
        assert views(state)["a"].drained_until is not None and views(state)["a"].reason == reason
        assert idle_pods(fake_k8s, fake_k8s_cell) == {}
        asked = creates_in(fake_k8s)
        assert asked == (0 if refusal == "unreachable" else 1)  # not retried where it was refused
        await state.reserve.refill()  # a is still drained: the refill goes to b, none to a
        assert list(idle_pods(fake_k8s, fake_k8s_cell).values()) == ["b"]
        assert creates_in(fake_k8s) == asked
        assert {name: view.running for name, view in views(state).items()} == {"a": 0, "b": 1}


async def test_a_reserve_bots_token_is_reviewed_by_its_own_pods_cluster_alone(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    """A replica that did not create a bot's pod finds its cell by asking every cluster: its pod there admits
    it, reviewed there. A look-alike of that name created in the other cluster (whoever may create pods there)
    makes the bot id no cell's at a replica that has not proved it; neither its token nor the bot's is sent
    to the other cluster."""
    env = reserve_env(fake_k8s, fake_k8s_cell)
    async with replica(env) as (state, _):
        bot_id = await warm_in_a(state)
        fake_k8s.set_phase(IDLE_PREFIX + bot_id, "Running")
        fresh, late = other_replica(env, coordination_of(state)), other_replica(env, coordination_of(state))
        try:
            assert await fresh.identity.refusal(grant(bot_id), hello(fake_k8s, bot_id)) is None
            assert fresh._bot_cells.get(bot_id) == "a"  # proved there: a listing never moves it
            await look_alike_in_b(late, fake_k8s_cell, bot_id)
            refused = await late.identity.refusal(grant(bot_id), hello(fake_k8s_cell, bot_id))
            assert refused is not None and "no Kubernetes cell alone holds" in refused, refused
            refused = await late.identity.refusal(grant(bot_id), hello(fake_k8s, bot_id))  # the real one too
            assert refused is not None and "no Kubernetes cell alone holds" in refused, refused
            # The look-alike's own token, at the replica that proved the bot: reviewed by a alone, refused.
            refused = await fresh.identity.refusal(grant(bot_id), hello(fake_k8s_cell, bot_id))
            assert refused is not None and "not authenticated" in refused, refused
            listed = await fresh.idle_machines()
            assert [m.bot_id for m in listed] == [bot_id, bot_id]  # both clusters answer with that bot id
            assert fresh._bot_cells.get(bot_id) == "a"
            stranger = "rsv-none"
            assert "no Kubernetes cell alone holds" in str(await fresh.identity.refusal(
                grant(stranger), Hello(machine_id=stranger, identity=fake_k8s.token_of(IDLE_PREFIX + bot_id))))
            assert fake_k8s_cell.calls_to("POST", "/tokenreviews") == []  # b never saw a bot's token
        finally:
            await fresh.aclose()
            await late.aclose()


async def test_a_claim_goes_to_the_pod_its_token_proved_not_a_look_alike_another_cluster_lists(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes, store: RedisServer) -> None:
    """A reserve bot dials a replica that did not create it: its token proves its pod in cell a. b's admin then
    creates a pod of that name, labelled idle with its bot id; the next listing finds both. The claim still
    patches a's pod, the one whose bot joins the session, and b's look-alike is left idle."""
    env = {**reserve_env(fake_k8s, fake_k8s_cell), **store.env}
    async with replica(env) as (one, _), replica(env) as (two, port_two):
        assert two.reserve is not None
        bot_id = await warm_in_a(one)
        name = IDLE_PREFIX + bot_id
        ws = await dial(fake_k8s, two, port_two, bot_id)
        await look_alike_in_b(one.machines, fake_k8s_cell, bot_id)
        listed = await two.machines.idle_machines()  # type: ignore[attr-defined]
        assert [m.bot_id for m in listed] == [bot_id, bot_id]
        accepting = asyncio.create_task(accept(ws))
        s = spec()
        result = await two.reserve.launch(s)
        assert result.claimed and await accepting == s.session_id
        assert fake_k8s.pods[name]["metadata"]["labels"]["voicefleet.io/session"] == s.session_id
        assert fake_k8s_cell.pods[name]["metadata"]["labels"]["voicefleet.io/state"] == "idle"
        assert fake_k8s_cell.calls_to("PATCH", name) == []
        await ws.close()


async def test_two_replicas_sharing_the_store_claim_distinct_warm_bots(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes, store: RedisServer) -> None:
    env = {**reserve_env(fake_k8s, fake_k8s_cell, idle=2), **store.env}
    fakes = clusters(fake_k8s, fake_k8s_cell)
    async with replica(env) as (one, port_one), replica(env) as (two, port_two):
        (first, s1, r1, ws_one), (second, s2, r2, ws_two) = await claimed_at_two_replicas(
            (one, port_one), (two, port_two), lambda: idle_pods(fake_k8s, fake_k8s_cell),
            lambda state, port, bot_id, cell: dial(fakes[cell], state, port, bot_id))
        assert r1.claimed and r2.claimed
        assert {r1.machine.machine_id, r2.machine.machine_id} == {IDLE_PREFIX + first, IDLE_PREFIX + second}
        for session, name in ((s1, r1.machine.machine_id), (s2, r2.machine.machine_id)):
            for looking in (one, two):  # either replica meets each session's pod
                found = await looking.machines.status(session.session_id)
                assert found is not None and found.machine_id == name
        assert one.channels.idle() == [] and two.channels.idle() == []
        await ws_one.close()
        await ws_two.close()


async def test_two_replicas_racing_for_one_idle_pod_over_cells_one_wins_and_the_other_moves_on(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    """The claim is the pod's one JSON Patch in its own cluster: at two replicas at once, one patch wins; the
    other is told the bot was taken (its session starts cold) and records no cell for its session."""
    env = reserve_env(fake_k8s, fake_k8s_cell)
    coordination = LocalCoordination()
    first, second = other_replica(env, coordination), other_replica(env, coordination)
    try:
        await first.launch_idle("rsv-race", "c")
        [cell] = [c for c, fake in clusters(fake_k8s, fake_k8s_cell).items() if "vf-idle-rsv-race" in fake.pods]
        clusters(fake_k8s, fake_k8s_cell)[cell].set_phase("vf-idle-rsv-race", "Running")
        a, b = spec(), spec()
        results = await asyncio.gather(first.adopt("rsv-race", a), second.adopt("rsv-race", b),
                                       return_exceptions=True)
        won = [r for r in results if not isinstance(r, BaseException)]
        lost = [r for r in results if isinstance(r, MachinesError)]
        assert len(won) == 1 and len(lost) == 1, results
        assert lost[0].reason in ("reserve_bot_taken", "reserve_bot_gone")
        winner, loser = (a, b) if results[0] is won[0] else (b, a)
        assert await coordination.key_holders.held(f"k8s-cell:{winner.session_id}") == cell
        assert await coordination.key_holders.held(f"k8s-cell:{loser.session_id}") is None
        for replica_ in (first, second):
            found = await replica_.status(winner.session_id)
            assert found is not None and found.machine_id == "vf-idle-rsv-race"
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_cluster_that_cannot_be_read_takes_only_its_own_warm_bots(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes, monkeypatch: pytest.MonkeyPatch) -> None:
    burst(monkeypatch, 4)
    async with replica(reserve_env(fake_k8s, fake_k8s_cell, idle=2)) as (state, _):
        # b's API server refuses the dispatcher's token for it from now on: nothing there can be read
        await check_a_lost_cell_takes_only_its_own_bots(
            state, lambda: idle_pods(fake_k8s, fake_k8s_cell), lambda: setattr(fake_k8s_cell, "token", "revoked"))
        machines = state.machines
        assert isinstance(machines, K8sCellWarmMachines)
        in_b = [bot for bot, cell in machines._bot_cells.items() if cell == "b"]
        assert in_b and all(machines.in_lost_cell(bot) for bot in in_b)
        assert not any(machines.in_lost_cell(bot) for bot, cell in machines._bot_cells.items() if cell == "a")


async def test_a_claimed_bot_dialling_again_is_found_through_its_session_at_any_replica(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    """Once claimed, an idle pod carries its session's label; its bot dialling again names its session, so
    another replica (no cache) finds its pod as that session's, in the cell the store records for it. A hello
    naming another session (another pod's, or not a session id at all) finds nothing; and the re-dial is not
    noted as a reserve bot's: a retirement by bot id leaves the session's pod running."""
    env = reserve_env(fake_k8s, fake_k8s_cell)
    async with replica(env) as (state, port):
        bot_id, cell, s, ws = await claimed_bot(fake_k8s, fake_k8s_cell, state, port)
        fake = clusters(fake_k8s, fake_k8s_cell)[cell]
        cold = spec()
        await state.machines.launch(cold)  # another session's pod (named for it), in its own cell
        await ws.close()
        name = IDLE_PREFIX + bot_id
        other = other_replica(env, coordination_of(state))
        try:
            for wrong in (cold.session_id, "../pods/x", "no-such-session"):
                refused = await other.identity.refusal(grant(bot_id), hello(fake, bot_id, wrong))
                assert refused is not None and f"has no pod {name}" in refused, (wrong, refused)
            # A session id not of the dispatcher's form is never sent to an API server (it would name another path).
            assert not any(f.calls_to("GET", "/pods/x") or f.calls_to("GET", "no-such")
                           for f in (fake_k8s, fake_k8s_cell))
            assert await other.identity.refusal(grant(bot_id), hello(fake, bot_id, s.session_id)) is None
            idle = await other.identity.refusal(grant(bot_id), hello(fake, bot_id))  # claimed: no longer idle
            assert idle is not None and "no Kubernetes cell alone holds" in idle
            await other.retire(bot_id)  # a stale retirement of the bot, at the replica it re-dialled
            assert name in fake.standing(), "the session's pod was deleted"
        finally:
            await other.aclose()


async def test_a_listing_while_a_cell_is_unreadable_records_no_bot_its_look_alike_is_listed_for(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    """A bot's own cluster that does not answer a listing cannot show it twice: a look-alike of its pod in
    the other cluster, listed alone then, is not taken as its cell, so the next look asks every cluster."""
    env = reserve_env(fake_k8s, fake_k8s_cell)
    async with replica(env) as (state, _):
        bot_id = await warm_in_a(state)
        fake_k8s.set_phase(IDLE_PREFIX + bot_id, "Running")
        await look_alike_in_b(state.machines, fake_k8s_cell, bot_id)
        late = other_replica(env, coordination_of(state))
        token = fake_k8s.token
        try:
            fake_k8s.token = "revoked"  # a cannot be read while late lists the cells
            assert [m.bot_id for m in await late.idle_machines()] == [bot_id]  # b's look-alike alone
            fake_k8s.token = token
            refused = await late.identity.refusal(grant(bot_id), hello(fake_k8s_cell, bot_id))
            assert refused is not None, "the bot was admitted against cell b's look-alike of its pod"
        finally:
            fake_k8s.token = token
            await late.aclose()


async def test_an_idle_pods_exit_is_read_from_its_own_cell_alone(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    """Why a reserve bot never dialled is its own pod's exit, as its cell's listing read it: a look-alike of that
    name that failed in another cluster says nothing of it."""
    async with replica(reserve_env(fake_k8s, fake_k8s_cell)) as (state, _):
        bot_id = await warm_in_a(state)
        machines = state.machines
        assert isinstance(machines, K8sCellWarmMachines)
        await look_alike_in_b(machines, fake_k8s_cell, bot_id)
        fake_k8s_cell.set_phase(IDLE_PREFIX + bot_id, "Failed", 3)
        await machines.idle_machines()
        assert machines.exit_detail(bot_id) is None  # a's pod still runs: b's failure is not its
        fake_k8s.set_phase(IDLE_PREFIX + bot_id, "Failed", 2)
        await machines.idle_machines()
        assert machines.exit_detail(bot_id) == "exit code 2"
        assert machines.exit_detail("rsv-unknown") is None


async def test_a_replica_that_made_a_bot_retiring_it_after_another_replica_claimed_it_leaves_the_session(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    """The replica that refilled a bot knows its cell, so its retirement (the sweep's, on an older listing) goes
    straight to that cluster: there the pod, claimed since by another replica's session, is not deleted."""
    env = reserve_env(fake_k8s, fake_k8s_cell)
    async with replica(env) as (state, _):
        bot_id = await warm_in_a(state)
        fake_k8s.set_phase(IDLE_PREFIX + bot_id, "Running")
        await retire_after_anothers_claim(state.machines, other_replica(env, coordination_of(state)), bot_id,
                                          claimed := spec())
        pod = fake_k8s.standing().get(IDLE_PREFIX + bot_id)
        assert pod is not None, "the claimed session's pod was deleted"
        assert pod["metadata"]["labels"]["voicefleet.io/session"] == claimed.session_id
