"""One process's record of each key's sessions (no store): expired records drop out at the next
start of that key, a session held again lasts until its new end, given-back ones never count."""

from __future__ import annotations

from dispatcher.store.key_sessions import LocalKeySessions


async def test_expired_records_free_the_share_and_one_held_again_lasts_until_its_new_end() -> None:
    now = [0.0]
    sessions = LocalKeySessions(clock=lambda: now[0])
    assert await sessions.hold("key-1", "s-1", 2, 10.0) is None
    assert await sessions.hold("key-1", "s-1", 2, 100.0) is None  # held again: its first end no longer applies
    assert await sessions.hold("key-1", "s-2", 2, 10.0) is None
    assert set(await sessions.hold("key-1", "s-3", 2, 10.0) or {}) == {"s-1", "s-2"}  # past the share
    now[0] = 20.0  # s-2's record ran out, s-1's did not
    held = await sessions.hold("key-1", "s-4", 2, 10.0)
    assert held is None
    assert set(await sessions.hold("key-1", "s-5", 2, 10.0) or {}) == {"s-1", "s-4"}


async def test_sessions_given_back_never_count_however_many_came_and_went() -> None:
    now = [0.0]
    sessions = LocalKeySessions(clock=lambda: now[0])
    for n in range(500):
        assert await sessions.hold("key-1", f"s-{n}", 2, 60.0) is None
        await sessions.release("key-1", [f"s-{n}"])
    assert await sessions.hold("key-1", "a", 2, 60.0) is None and await sessions.hold("key-1", "b", 2, 60.0) is None
    held = await sessions.hold("key-1", "c", 2, 60.0)
    assert held is not None and set(held) == {"a", "b"} and all(ago == 0.0 for ago in held.values())
