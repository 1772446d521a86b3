"""A reserve bot's side of the control channel, played by a test: dial in idle, accept one
assignment (what a real bot on a cloud reserve machine does; the providers' fakes run no bot)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from botchannel.contract import CHANNEL_PATH, Hello, Reply, Request, Welcome, encode, parse_frame
from dispatcher.machines.base import LaunchResult, LaunchSpec, MachinesError, MachineState
from dispatcher.reserve.reserve import Reserve


async def dial_idle(state: Any, port: int, bot_id: str, image: str, identity: str | None = None) -> ClientConnection:
    """Say hello as an idle bot and wait until the dispatcher counts it idle; with the credential
    the dispatcher issues the reserve machine launched as `bot_id` (the providers' fakes run no bot),
    and the machine's identity token where its provider issues one."""
    credential = state.channels.credentials.issue("idle", bot_id, 600)
    ws = await connect(f"ws://127.0.0.1:{port}{CHANNEL_PATH}",
                       additional_headers={"Authorization": f"Bearer {credential}"}, proxy=None)
    await ws.send(encode(Hello(machine_id=bot_id, image=image, capabilities=("daily",), identity=identity)))
    assert isinstance(parse_frame(await ws.recv()), Welcome)
    assert await state.channels.wait_until(lambda: len(state.channels.idle()) == 1, 10)
    return ws


async def claim(reserve: Reserve, ws: ClientConnection, spec: LaunchSpec) -> tuple[LaunchResult, dict[str, Any]]:
    """`reserve.launch(spec)` while the bot accepts the assignment; the result and its params."""

    accepting = asyncio.create_task(accept_assignment(ws))
    result = await reserve.launch(spec)
    return result, await accepting


async def accept_assignment(ws: ClientConnection) -> dict[str, Any]:
    """Accept the one assignment an idle bot is sent; its params."""
    request = parse_frame(await ws.recv())
    assert isinstance(request, Request) and request.method == "assign"
    await ws.send(encode(Reply(request.id, result={"session_id": request.params["session_id"]})))
    return dict(request.params)


async def seen_by_another_replica(other: Any, spec: LaunchSpec, adopted: LaunchResult) -> None:
    """A replica that did not claim the reserve machine (no cache: the provider's tags are the
    record) finds the session on it, counts it, offers it to nobody as idle, and stops it."""
    try:
        found = await other.status(spec.session_id)
        assert found is not None and found.state is MachineState.STARTED
        assert (found.machine_id, found.body_digest) == (adopted.machine.machine_id, spec.body_digest)
        assert found.created_at == adopted.machine.created_at
        assert [m.session_id for m in await other.list()] == [spec.session_id]
        assert await other.idle_machines() == []
        assert await other.stop(spec.session_id)
    finally:
        await other.aclose()


async def claimed_once(machines: Any, bot_id: str, spec: Callable[[], LaunchSpec]) -> None:
    """A reserve machine serves one session: a second claim is refused, and so is one of a bot never launched."""
    await machines.adopt(bot_id, spec())
    with pytest.raises(MachinesError) as refused:
        await machines.adopt(bot_id, spec())
    assert refused.value.reason == "reserve_bot_taken"
    with pytest.raises(MachinesError) as gone:
        await machines.adopt("rsv-none", spec())
    assert gone.value.reason == "reserve_bot_gone"
