"""Store scripts called within one turn of the event loop go in one round trip, on a real
redis-server: each gets its own answer, a script the store has not loaded (a store restarted or
flushed) still runs, and a script that fails fails alone."""

from __future__ import annotations

import asyncio
from collections import Counter

from redis.asyncio import Redis

from dispatcher.store.client import Store, StoreUnavailable
from dispatcher.store.together import together
from tests.support.operation_counts import counting, traced

_SET = "redis.call('SET', KEYS[1], ARGV[1]) return ARGV[1]"
_FAIL = "return redis.error_reply('refused here')"


async def test_scripts_of_one_turn_go_in_one_round_trip_each_with_its_answer(store: Store) -> None:
    setting = store.redis.register_script(_SET)
    a, b = store.key("together", "a"), store.key("together", "b")
    await store.call(lambda: setting(keys=[a], args=["0"]))  # loaded: the pipeline sends EVALSHA
    with traced(), counting(Counter()) as counts:
        answers = await asyncio.gather(together(store).run(setting, [a], ["1"]),
                                       together(store).run(setting, [b], ["2"]))
    assert answers == ["1", "2"]
    assert counts["store round trips"] == 1, counts
    assert await store.redis.mget([a, b]) == ["1", "2"]


async def test_a_script_the_store_has_not_loaded_runs_all_the_same(store: Store, admin: Redis) -> None:
    setting = store.redis.register_script(_SET)
    a, b = store.key("together", "a"), store.key("together", "b")
    await admin.script_flush()
    answers = await asyncio.gather(together(store).run(setting, [a], ["1"]),
                                   together(store).run(setting, [b], ["2"]))
    assert answers == ["1", "2"]
    assert await store.redis.mget([a, b]) == ["1", "2"]


async def test_a_script_that_fails_fails_alone_as_the_store_answers_it(store: Store) -> None:
    setting, failing = store.redis.register_script(_SET), store.redis.register_script(_FAIL)
    a = store.key("together", "a")
    for script in (setting, failing):  # loaded, so both go in the pipeline
        await store.redis.script_load(script.script)
    ok, failed = await asyncio.gather(together(store).run(setting, [a], ["1"]),
                                      together(store).run(failing, [a], []), return_exceptions=True)
    assert ok == "1"
    assert isinstance(failed, StoreUnavailable)


async def test_a_store_that_does_not_answer_fails_each_of_them(store: Store) -> None:
    setting = store.redis.register_script(_SET)
    await store.redis.aclose()
    down = Store(store.settings, redis=Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5))
    answers = await asyncio.gather(together(down).run(setting, ["k1"], ["1"]),
                                   together(down).run(setting, ["k2"], ["2"]), return_exceptions=True)
    assert all(isinstance(answer, StoreUnavailable) for answer in answers), answers
    await down.aclose()


async def test_scripts_whose_send_is_cancelled_before_it_runs_are_cancelled_not_left_waiting(store: Store) -> None:
    setting = store.redis.register_script(_SET)
    runs = [asyncio.ensure_future(together(store).run(setting, [store.key("together", n)], [n])) for n in "ab"]
    await asyncio.sleep(0)  # both queued, their send scheduled
    await asyncio.sleep(0)  # its task made, not run yet: the dispatcher shutting down cancels it
    for sending in list(together(store)._sending):
        sending.cancel()
    answers = await asyncio.wait_for(asyncio.gather(*runs, return_exceptions=True), timeout=5)
    assert all(isinstance(answer, asyncio.CancelledError) for answer in answers), answers


async def test_a_set_goes_with_the_scripts_of_its_turn(store: Store, admin: Redis) -> None:
    setting = store.redis.register_script(_SET)
    a, b = store.key("together", "a"), store.key("together", "b")
    await store.call(lambda: setting(keys=[a], args=["0"]))
    with traced(), counting(Counter()) as counts:
        answers = await asyncio.gather(together(store).run(setting, [a], ["1"]),
                                       together(store).set_px(b, "2", 60_000))
    assert answers == ["1", True]
    assert counts["store round trips"] == 1, counts
    assert await store.redis.mget([a, b]) == ["1", "2"]
    assert 0 < await admin.pttl(b) <= 60_000
