"""An Idempotency-Key's holder region is recorded once in the home region's store, under the store
user's own access rules, and the first region recorded is every later asker's answer."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.store.client import Store, StoreUnavailable
from dispatcher.store.first_claims import StoreFirstClaims
from dispatcher.store.memory import LocalFirstClaims
from dispatcher.store.store_settings import StoreSettings
from tests.support.redis_server import RedisServer


async def test_the_first_region_recorded_is_the_answer_for_everyone(store: Store, redis: RedisServer) -> None:
    holders = StoreFirstClaims(store)
    answers = await asyncio.gather(*(holders.first("k1", region, 60) for region in ("eu", "us", "ap")))
    assert len(set(answers)) == 1 and answers[0] in ("eu", "us", "ap")
    assert await holders.first("k1", "us", 60) == answers[0]
    assert await holders.first("k2", "us", 60) == "us"
    assert redis.refused() == []  # SET NX GET is within the store user's rules


async def test_a_provisional_record_is_kept_longer_only_for_its_holder(store: Store, redis: RedisServer) -> None:
    holders = StoreFirstClaims(store)
    assert await holders.first("k3", "eu", 60) == "eu"
    assert not await holders.keep("k3", "us", 86400)  # another region's word keeps nothing
    assert 0 < redis.admin().ttl(store.key("home", "k3")) <= 60
    assert await holders.keep("k3", "eu", 86400)
    assert redis.admin().ttl(store.key("home", "k3")) > 86000
    assert not await holders.keep("k4", "eu", 86400)  # nothing recorded: nothing made
    assert redis.admin().exists(store.key("home", "k4")) == 0
    assert redis.refused() == []  # the leases' compare-and-extend script is the store user's


async def test_a_record_is_swapped_only_by_its_holder(store: Store, redis: RedisServer) -> None:
    for holders in (StoreFirstClaims(store), LocalFirstClaims()):
        assert await holders.first("k5", "eu", 60) == "eu"
        assert not await holders.swap("k5", "us", "us leg=1", 60)  # another's word changes nothing
        assert await holders.held("k5") == "eu"
        assert await holders.swap("k5", "eu", "eu leg=1", 600)
        assert await holders.held("k5") == "eu leg=1"
        assert not await holders.swap("k6", "eu", "eu leg=1", 60)  # nothing recorded: nothing written
        assert await holders.held("k6") is None
    assert redis.admin().ttl(store.key("home", "k5")) > 500
    assert redis.refused() == []  # the swap's compare-and-set script is the store user's


async def test_a_store_that_does_not_answer_raises_rather_than_guess(store: Store, redis: RedisServer) -> None:
    redis.stop()
    with pytest.raises(StoreUnavailable):
        await StoreFirstClaims(store).first("k1", "eu", 60)


async def test_one_process_remembers_the_first_until_it_expires() -> None:
    now = [0.0]
    holders = LocalFirstClaims(clock=lambda: now[0], most=2)
    assert await holders.first("k", "eu", 10) == "eu"
    assert await holders.first("k", "us", 10) == "eu"
    now[0] = 11
    assert await holders.first("k", "us", 10) == "us"


class OlderRedis:
    """A Redis 6.2 as a client meets it, on a loopback port: RESP3 `HELLO` and `PING` answered, and `SET` with
    both NX and GET refused `ERR syntax error`, as servers before 7.0 refuse it (anything else: OK)."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.serving: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in self.serving:
            task.cancel()
        await asyncio.gather(*self.serving, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.serving.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while (head := await reader.readline()).startswith(b"*"):
                words = []
                for _ in range(int(head[1:])):
                    size = int((await reader.readline())[1:])
                    words.append((await reader.readexactly(size + 2))[:-2].upper())
                if words[0] == b"HELLO":
                    writer.write(b"%3\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n6.2.14\r\n"
                                 b"$5\r\nproto\r\n:3\r\n")
                elif words[0] == b"PING":
                    writer.write(b"+PONG\r\n")
                elif words[0] == b"SET" and b"NX" in words and b"GET" in words:
                    writer.write(b"-ERR syntax error\r\n")
                else:
                    writer.write(b"+OK\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def test_a_server_older_than_redis_7_is_named_as_such() -> None:
    """`SET NX GET` came with Redis 7.0: an older server's syntax error says so, not that the store is away."""
    async with OlderRedis() as url:
        store = Store(StoreSettings(url=url, replica_id="r-old"))
        try:
            with pytest.raises(StoreUnavailable, match=r"needs Redis 7\.0 or later"):
                await StoreFirstClaims(store).first("k1", "eu", 60)
        finally:
            await store.aclose()
