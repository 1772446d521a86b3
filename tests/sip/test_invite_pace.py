"""The edge's last spacing of a trunk's INVITEs (sipedge/invite_pace.py): handed to the SIP stack a turn apart
however close the dispatcher's `joined` answers reached the edge. The clock is the test's own: it moves only
by what the spacing slept."""

from __future__ import annotations

import asyncio

from sipedge.invite_pace import InvitePace

CPS = 4.0  # a turn every 0.25 s


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_invites_come_a_turn_apart_per_trunk_whenever_their_answers_came() -> None:
    clock = Clock()
    pace = InvitePace(lambda: clock.now, clock.sleep)
    handed = []
    for _ in range(3):  # three answers reaching the edge at once (the first's delayed, the next's not)
        await pace.turn("far", CPS)
        handed.append(clock.now)
    assert handed == [100.0, 100.25, 100.5]
    clock.now += 0.1  # an answer 0.1 s after the last INVITE: it waits the rest of the turn
    await pace.turn("far", CPS)
    assert clock.now == 100.75
    await pace.turn("other", CPS)  # another trunk has its own turns
    assert clock.now == 100.75
    clock.now += 10
    await pace.turn("far", CPS)  # long after: at once
    assert clock.now == 110.75


async def test_invites_asked_at_once_go_one_at_a_time() -> None:
    clock = Clock()
    pace = InvitePace(lambda: clock.now, clock.sleep)
    handed: list[float] = []

    async def one() -> None:
        await pace.turn("far", CPS)
        handed.append(clock.now)

    await asyncio.gather(*(one() for _ in range(3)))
    assert handed == [100.0, 100.25, 100.5]


async def test_a_sleep_that_wakes_early_is_slept_again_until_the_turn() -> None:
    clock = Clock()
    woke_early = [0.001]  # the event loop runs a timer due within its clock's resolution: a sleep may end early

    async def early_once(seconds: float) -> None:
        clock.now += seconds - (woke_early.pop() if woke_early else 0.0)

    pace = InvitePace(lambda: clock.now, early_once)
    await pace.turn("far", CPS)
    await pace.turn("far", CPS)
    assert clock.now >= 100.0 + 1 / CPS
