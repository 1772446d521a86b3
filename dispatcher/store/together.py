"""Store writes that go together: scripts and plain commands called within one turn of the event
loop are sent in one round trip (a pipeline, no transaction), each answered as if it had gone alone.

A start's writes come at two moments, each several at once: as it is admitted, its `requested`
event, its session index entry, its recording plan's event (each begun in the background) and its
bot's values; as its machine lands, its launch's record (dispatcher/store/launches.py), its
`launched` event and its open in the budgets' ledger (dispatcher/store/budget_ledger.py). Each on
its own was a round trip of the start's; together they are two. A script the store does not hold
(a store restarted or flushed) goes again on its own, which loads it; a store that does not answer
fails each of them as `Store.call` would.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from dispatcher.store.client import Store, StoreUnavailable

if TYPE_CHECKING:  # redis-py only where a store is configured: a local start never loads it (its CPU)
    from redis.commands.core import AsyncScript

# A script with its keys and arguments, or (no script) a SET's key, value and milliseconds as its arguments.
Queued = tuple["AsyncScript | None", Sequence[str], Sequence[str | int | float], "asyncio.Future[Any]"]


class Together:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._queued: list[Queued] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        """The script's answer; raises `StoreUnavailable` as `Store.call` does."""
        return await self._queue(script, keys, args)

    async def set_px(self, key: str, value: str, ms: int) -> Any:
        """`SET key value PX ms`, its answer as the client parses it. The one plain command sent
        together, and spelled out, so the store user's rules read it from this code
        (tests/support/store_commands.py)."""
        return await self._queue(None, (), (key, value, ms))

    async def _queue(self, script: AsyncScript | None, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        loop = asyncio.get_running_loop()
        if self._queued and self._loop is not loop:  # queued on a loop gone since (a test's): dropped
            _unanswered(self._queued)
            self._queued = []
        answer: asyncio.Future[Any] = loop.create_future()
        self._queued.append((script, keys, args, answer))
        if len(self._queued) == 1:  # the first of this turn: the others queue behind it
            self._loop = loop
            loop.call_soon(self._send)
        return await answer

    def _send(self) -> None:
        queued, self._queued = self._queued, []
        task = asyncio.get_running_loop().create_task(self._sent(queued))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        task.add_done_callback(partial(_unanswered, queued))  # cancelled before it ran (shutdown)

    async def _sent(self, queued: list[Queued]) -> None:
        try:
            if len(queued) == 1:
                answers: list[Any] = [await self._store.call(partial(_alone, self._store, *queued[0][:3]))]
            else:
                answers = await self._store.call(lambda: _pipelined(self._store, queued))
        except Exception as exc:  # StoreUnavailable: each of them failed
            for *_, answer in queued:
                if not answer.done():
                    answer.set_exception(exc)
            return
        from redis.exceptions import NoScriptError, RedisError  # loaded: the store answered

        for (script, keys, args, answer), found in zip(queued, answers, strict=True):
            if isinstance(found, NoScriptError):  # not loaded yet: on its own, which loads it
                try:
                    found = await self._store.call(partial(_alone, self._store, script, keys, args))
                except Exception as exc:
                    found = exc
            elif isinstance(found, RedisError):  # as `Store.call` answers a script that failed alone
                found = StoreUnavailable(f"the store did not answer: {type(found).__name__}")
            if answer.done():
                continue
            if isinstance(found, BaseException):
                answer.set_exception(found)
            else:
                answer.set_result(found)


async def _alone(store: Store, script: AsyncScript | None, keys: Sequence[str],
                 args: Sequence[str | int | float]) -> Any:
    if script is None:
        key, value, ms = args
        return await store.redis.execute_command("SET", key, value, "PX", ms)  # type: ignore[no-untyped-call]
    return await script(keys=keys, args=args)


def _unanswered(queued: list[Queued], _sent: asyncio.Task[None] | None = None) -> None:
    for *_, answer in queued:
        answer.cancel()  # nothing where answered already


async def _pipelined(store: Store, queued: list[Queued]) -> list[Any]:
    async with store.redis.pipeline(transaction=False) as pipe:
        for script, keys, args, _ in queued:
            if script is None:
                key, value, ms = args
                pipe.execute_command("SET", key, value, "PX", ms)
            else:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
        answers: list[Any] = await pipe.execute(raise_on_error=False)
    return answers


_TOGETHER: weakref.WeakKeyDictionary[Store, Together] = weakref.WeakKeyDictionary()


def together(store: Store) -> Together:
    """The store's one `Together`: scripts of every caller on it go together."""
    found = _TOGETHER.get(store)
    if found is None:
        found = _TOGETHER[store] = Together(store)
    return found
