"""Review: a closing replica that cut a machine's end's grace short used to push `session.ended` as the machine's
end (`reason: machine_ended`) and mark the session's end pushed for every replica; the bot's own `ended` report,
which the grace waits for and which came at another replica a moment later, was then never pushed: the receiver
was told the bot was killed or lost when it ended the call itself. The close now hands the pending end to the
store (here a memory standing in for it, shared by both replicas as the outbox and the once-only marks are)."""

from __future__ import annotations

import asyncio
import time

from dispatcher.sessions.machine_end_grace import MACHINE_END_GRACE_SECONDS, MachineEndGrace
from dispatcher.sessions.webhook_outbox import MemoryOutbox
from dispatcher.sessions.webhooks import LifecycleWebhooks, WebhookSettings, secret_key
from dispatcher.store.handed_over_ends import MemoryHandedOverEnds
from dispatcher.store.memory import LocalOnce
from tests.dispatcher.sessions.test_webhooks import SECRET


async def test_a_bot_report_after_a_close_cut_its_grace_short_is_the_session_ended_pushed() -> None:
    outbox, once, handed_over = MemoryOutbox(), LocalOnce(), MemoryHandedOverEnds(shared=True)  # the one store
    timeline: list[dict] = []  # the session's, as every replica reads it

    async def read(session_id: str) -> list[dict]:
        return list(timeline)

    settings = WebhookSettings("http://127.0.0.1:9/hook", secret_key(SECRET), timeout_seconds=2.0)
    closing = LifecycleWebhooks(settings, read, outbox, once=once)
    closing_grace = MachineEndGrace(read, handed_over)
    closing_grace.finalisers.append(closing.machine_ended)
    other = LifecycleWebhooks(settings, read, outbox, once=once)
    other_grace = MachineEndGrace(read, handed_over)
    other_grace.finalisers.append(other.machine_ended)
    timeline.append({"event": "machine_ended", "at": time.time(), "state": "ended"})
    closing_grace.timeline_event("s1", timeline[-1])
    await asyncio.sleep(0)  # its grace has begun
    await closing_grace.aclose()  # replica A stops within the grace
    await closing.aclose()
    timeline.append({"event": "ended", "at": time.time(), "reason": "bot_ended"})
    other.timeline_event("s1", timeline[-1])  # the report, at B
    other_grace.clock = lambda: time.time() + MACHINE_END_GRACE_SECONDS + 1  # B's sweep, once the grace is over
    assert await other_grace.sweep() == 1
    await other.aclose()
    pushed = [entry["data"] for _, entry in await outbox.claim(time.time() + 60, 30, 10)]
    assert [data.get("reason") for data in pushed] == ["bot_ended"]  # the bot's own end, as its report said


async def test_a_handed_over_end_never_reported_is_pushed_once_by_another_replica_after_its_grace() -> None:
    outbox, once, handed_over = MemoryOutbox(), LocalOnce(), MemoryHandedOverEnds(shared=True)
    timeline = [{"event": "machine_ended", "at": time.time(), "state": "failed"}]  # its bot was killed

    async def read(session_id: str) -> list[dict]:
        return list(timeline)

    settings = WebhookSettings("http://127.0.0.1:9/hook", secret_key(SECRET), timeout_seconds=2.0)
    replicas = [LifecycleWebhooks(settings, read, outbox, once=once) for _ in range(3)]
    graces = [MachineEndGrace(read, handed_over) for _ in replicas]
    for hooks, grace in zip(replicas, graces, strict=True):
        grace.finalisers.append(hooks.machine_ended)
    closing, first, second = graces
    closing.timeline_event("s1", timeline[0])
    await asyncio.sleep(0)
    await closing.aclose()  # within the grace: handed over, nothing pushed
    assert await first.sweep() == 0  # still in its grace
    first.clock = second.clock = lambda: time.time() + MACHINE_END_GRACE_SECONDS + 1
    assert await first.sweep() == 1
    assert await second.sweep() == 0
    for hooks in replicas:
        await hooks.aclose()
    pushed = [entry["data"] for _, entry in await outbox.claim(time.time() + 60, 30, 10)]
    assert [(data["session_id"], data.get("reason")) for data in pushed] == [("s1", "machine_ended")]
