"""Sessions whose home is a given cell (dispatcher/machines/cells.py) and replicas holding the warm reserve
over cells, for the tests of providers that launch over cells (ECS_CELLS, CLOUDRUN_CELLS, GCE_CELLS)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any


def homed_in(machines: Any, cell: str, n: int = 1) -> list[str]:
    """`n` new session ids (24 hex digits, as the dispatcher makes them) whose home in `machines.cells`
    is `cell`."""
    found: list[str] = []
    while len(found) < n:
        if machines.cells.home(session := secrets.token_hex(12)) == cell:
            found.append(session)
    return found


async def admin_status(machines: Any) -> dict[str, Any]:
    """The dispatcher's `GET /status` over `machines`, as an admin reads it."""
    import httpx

    from dispatcher.app import create_app
    from dispatcher.settings import Settings, hash_api_key
    from tests.support.dispatcher_server import serving

    key = "admin-key-0123456789"
    settings = Settings(api_key_hashes=frozenset(), admin_key_hashes=frozenset({hash_api_key(key)}))
    app = create_app(settings, env={"RESERVE_MAX_IDLE": "0"}, machines=machines, rooms=None)
    async with serving(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                               base_url="http://127.0.0.1") as api:
        try:
            body: dict[str, Any] = (await api.get("/status", headers={"Authorization": f"Bearer {key}"})).json()
        finally:
            await app.state.voicefleet.aclose()
    return body


async def check_cold_cells(mode: str, machines_type: type, env: dict[str, str], *, warm: bool = False) -> None:
    """`MACHINES=mode` over `env`'s cells `a` and `b` builds `machines_type`: cold (no reserve over cells),
    or with `warm` one that holds the warm reserve over them."""
    from dispatcher.factory import build_machines
    from dispatcher.machines.base import Machines, WarmMachines
    from dispatcher.settings import Settings
    from dispatcher.store.local import LocalCoordination

    machines = build_machines(Settings(machines=mode), env, LocalCoordination())
    try:
        assert isinstance(machines, machines_type) and isinstance(machines, Machines)
        assert isinstance(machines, WarmMachines) is warm
        assert [view.name for view in machines.views()] == ["a", "b"]
    finally:
        await machines.aclose()


async def check_cells_mode(mode: str, setting: str, machines_type: type, env: dict[str, str], audience: str,
                           *, warm_type: type | None = None) -> None:
    """`MACHINES=mode` with `setting` listing cells `a` and `b` (in `env`) and a bot channel builds
    `machines_type`, cold (no reserve over cells), or `warm_type` where the reserve runs over them, and
    the config check names a cell without a project and a missing store."""
    from dispatcher.factory import configuration_problems

    channel = {**env, "BOT_CHANNEL_URL": audience, "BOT_CHANNEL_TOKEN": "t" * 32}
    await check_cold_cells(mode, warm_type or machines_type, channel, warm=warm_type is not None)
    base = {**env, "MACHINES": mode, "DAILY_API_KEY": "k"}
    problems = configuration_problems({**base, setting: '[{"name": "a"}]'})
    assert any(f"{setting}[0] (a): project must be a GCP project id" in problem for problem in problems)
    assert any(f"{setting} needs the shared store: set REDIS_URL" in problem
               for problem in configuration_problems(base)), configuration_problems(base)


# The warm reserve over cells (test_ecs_cell_reserve.py, test_gce_cell_reserve.py).

@contextlib.asynccontextmanager
async def reserve_replica(mode: str, env: dict[str, str], channel_token: str) -> AsyncIterator[tuple[Any, int]]:
    """A dispatcher replica of `MACHINES=mode` built from `env` (its machines too, as `python -m
    dispatcher` builds them), serving on a port: its state and the port."""
    from dispatcher.app import create_app
    from dispatcher.settings import Settings
    from tests.support.dispatcher_server import serving

    app = create_app(Settings(machines=mode, bot_channel_token=channel_token, api_key_hashes=frozenset({b"x"})),
                     env=env, rooms=None)
    state = app.state.voicefleet
    try:
        async with serving(app) as port:
            yield state, port
    finally:
        await state.aclose()


async def accept(ws: Any) -> str:
    """A reserve bot's side of a claim: it takes the session it is assigned; returns that session's id."""
    from botchannel.contract import Reply, Request, encode, parse_frame

    request = parse_frame(await ws.recv())
    assert isinstance(request, Request) and request.method == "assign"
    await ws.send(encode(Reply(request.id, result={"session_id": request.params["session_id"]})))
    return str(request.params["session_id"])


async def claimed_warm_bot(state: Any, port: int, reserve_bots: Any, dial: Any) -> tuple[str, str, Any, Any]:
    """The reserve's one bot, refilled, dialled in and claimed by a session: its id, cell, session and channel.
    `reserve_bots()`: bot id → its machine's cell; `dial(bot id, cell)`: the bot's channel, once idle here."""
    from tests.dispatcher.machines.test_contract import spec

    await state.reserve.refill()
    [(bot_id, cell)] = reserve_bots().items()
    ws = await dial(bot_id, cell)
    accepting = asyncio.create_task(accept(ws))
    s = spec()
    assert (await state.reserve.launch(s)).claimed and await accepting == s.session_id
    return bot_id, cell, s, ws


async def check_met_elsewhere_and_claimed_once(state: Any, other: Any, bot_id: str, session_id: str,
                                               machine_id: str) -> None:
    """Another replica's provider (`other`, no cache; closed here) meets the claimed session's machine through
    the store's record of its cell, and the bot is never adopted again."""
    import pytest

    from dispatcher.machines.base import MachinesError
    from tests.dispatcher.machines.test_contract import spec

    try:
        found = await other.status(session_id)
        assert found is not None and found.machine_id == machine_id
    finally:
        await other.aclose()
    with pytest.raises(MachinesError) as again:
        await state.machines.adopt(bot_id, spec())
    assert again.value.reason in ("reserve_bot_gone", "reserve_bot_taken")


async def spend(state: Any, cell: str, tokens: int) -> None:
    """Cold launches' tokens taken in `cell` (as starts homed there would)."""
    for _ in range(tokens):
        assert (await state.machines.cells.creates.cold_in(cell, 0.0)).granted


def coordination_of(state: Any) -> Any:
    """The replica's store (its reserve's)."""
    return state.reserve._coordination


async def retire_after_anothers_claim(maker: Any, other: Any, bot_id: str, claimed: Any) -> None:
    """`other` (another replica's provider over the cells, closed after) claims reserve bot `bot_id` for the
    session `claimed`; then `maker`, the replica that refilled the bot and so knows its cell, retires it: the
    sweep's or the planner's retirement, decided on a view older than that claim."""
    try:
        await other.adopt(bot_id, claimed)
        await maker.retire(bot_id)
    finally:
        await other.aclose()


async def check_refills_go_where_tokens_are_left(state: Any, reserve_cells: Any, made_in_a: Any) -> None:
    """A reserve of two over cells `a` and `b` (a burst of 3 each), a's tokens all taken by its cold starts:
    the refills take b's own tokens, as many as it can spare beside one for its cold starts, and nothing
    is made in a. `reserve_cells()`: each reserve machine's cell; `made_in_a()`: the creates a was sent."""
    await spend(state, "a", 3)  # cell a's cold starts took every token
    creates = state.machines.cells.creates
    spare_b = (await creates.look(among=("b",))).spare
    await state.reserve.refill()
    cells = reserve_cells()
    assert len(cells) == spare_b == 2  # as many as b could spare, one token left for its cold starts
    assert set(cells) == {"b"}
    assert (await creates.look(among=("b",))).spare == 0  # taken from b's own bucket
    assert made_in_a() == 0


async def check_a_lost_cell_takes_only_its_own_bots(state: Any, reserve_bots: Any, lose_b: Any) -> None:
    """A reserve of two over cells `a` and `b` (a burst of 4 each), one bot in each; then b cannot be read
    (`lose_b()`) while both bots are late for their hello: b is shown unreadable, its bot is forgotten
    without counting as a failure of the image, and its replacement goes to a. `reserve_bots()`: bot id →
    its machine's cell."""
    reserve = state.reserve
    await reserve.refill()  # a refill takes the cell with the most spare tokens: one bot in each
    await spend(state, "a", 1)  # b has more spare tokens left than a: a refill would choose b
    bots = reserve_bots()
    assert sorted(bots.values()) == ["a", "b"]
    [in_b] = [bot_id for bot_id, cell in bots.items() if cell == "b"]
    lose_b()
    # Both bots are late for their hello (neither dialled in: their machines boot slowly), not yet stuck.
    cold = reserve.planning.sizer.cold.mean
    started = reserve._clock()
    reserve._clock = lambda: started + cold * 2
    await reserve.refill()
    views = {view.name: view for view in state.machines.views()}
    assert views["b"].unreadable is not None and views["a"].unreadable is None
    # b's bot is forgotten, not a failure of the image (no backoff), and its replacement goes to a.
    assert reserve.failed_bots.worst().in_a_row == 0
    new = {bot_id: cell for bot_id, cell in reserve_bots().items() if bot_id not in bots}
    assert list(new.values()) == ["a"]
    assert in_b not in reserve._warming._launched


async def claimed_at_two_replicas(one: tuple[Any, int], two: tuple[Any, int], reserve_bots: Any, dial: Any) -> Any:
    """Two replicas sharing the store refill a reserve of two; each bot dials a replica of its own (a load
    balancer's choice: the second's may never have launched it, and finds its cell by asking the cells),
    and each replica's start claims its bot. `reserve_bots()`: bot id → its machine's cell; `dial(state,
    port, bot id, cell)`: the bot's channel. Returns the two (bot id, session, result, channel)."""
    from tests.dispatcher.machines.test_contract import spec

    (first_state, first_port), (second_state, second_port) = one, two
    await first_state.reserve.refill()  # whichever replica plans launches the deployment's two bots
    await second_state.reserve.refill()
    bots = reserve_bots()
    assert len(bots) == 2
    (first, first_cell), (second, second_cell) = bots.items()
    ws_one = await dial(first_state, first_port, first, first_cell)
    ws_two = await dial(second_state, second_port, second, second_cell)
    assert second_state.machines._bot_cells.get(second) == second_cell
    answers = asyncio.gather(accept(ws_one), accept(ws_two))
    s1, s2 = spec(), spec()
    r1, r2 = await asyncio.gather(first_state.reserve.launch(s1), second_state.reserve.launch(s2))
    assert sorted(await answers) == sorted([s1.session_id, s2.session_id])
    return (first, s1, r1, ws_one), (second, s2, r2, ws_two)
