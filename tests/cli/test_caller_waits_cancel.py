"""A Ctrl-C is never lost in the caller's waits: a cancellation that arrives in the same turn of the loop
as what the wait waited for still cancels the call (Python 3.11's `asyncio.wait_for` returned the result
then, and the call went on), and the caller's own modules wait with `within`, not `asyncio.wait_for`."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from voicefleet.loadtest.within import within

CALLER = [Path("src/voicefleet/loadtest"), Path("src/voicefleet/evals")]


async def test_a_cancellation_that_comes_with_the_result_cancels_the_wait() -> None:
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def call() -> str:
        await within(answer, 30)
        return "the call went on"

    placed = asyncio.create_task(call())
    await asyncio.sleep(0)  # the call waits on the answer
    answer.set_result("connected")  # the answer comes ...
    placed.cancel()  # ... and Ctrl-C in the same turn of the loop, before the call runs again
    with pytest.raises(asyncio.CancelledError):
        await placed


async def test_a_wait_past_its_seconds_is_a_timeout_and_leaves_its_task_uncancelled() -> None:
    with pytest.raises(TimeoutError):
        await within(asyncio.Event().wait(), 0.01)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


@pytest.mark.parametrize("folder", CALLER, ids=str)
def test_the_callers_modules_never_wait_with_asyncio_wait_for(folder: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    found = [f"{path.relative_to(root)}:{node.lineno}" for path in sorted((root / folder).glob("*.py"))
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Attribute) and node.attr == "wait_for"
             and isinstance(node.value, ast.Name) and node.value.id == "asyncio"]
    assert found == [], f"asyncio.wait_for drops a cancellation that comes with its result; use within(): {found}"
