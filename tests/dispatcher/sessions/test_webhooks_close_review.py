"""Review: a closing replica that cuts a machine's end's grace short pushes `session.ended` as the machine's end
(`reason: machine_ended`) and marks the session's end pushed for every replica; the bot's own `ended` report, which
the grace waits for and which comes at another replica a moment later, is then never pushed: the receiver is told
the bot was killed or lost when it ended the call itself."""

from __future__ import annotations

import asyncio
import time

import pytest

from dispatcher.sessions.webhook_outbox import MemoryOutbox
from dispatcher.sessions.webhooks import LifecycleWebhooks, WebhookSettings, secret_key
from dispatcher.store.memory import LocalOnce
from tests.dispatcher.sessions.test_webhooks import SECRET


async def no_bot_end_yet(session_id: str) -> list[dict]:
    return []


@pytest.mark.xfail(strict=True, reason="the close pushes a machine's end at once and marks session.ended pushed "
                   "everywhere, so the bot's report the grace waits for is dropped at the replica it reaches")
async def test_a_bot_report_after_a_close_cut_its_grace_short_is_the_session_ended_pushed() -> None:
    outbox, once = MemoryOutbox(), LocalOnce()  # the replicas' one store
    settings = WebhookSettings("http://127.0.0.1:9/hook", secret_key(SECRET), timeout_seconds=2.0)
    closing = LifecycleWebhooks(settings, no_bot_end_yet, outbox, once=once)
    other = LifecycleWebhooks(settings, no_bot_end_yet, outbox, once=once)
    closing.timeline_event("s1", {"event": "machine_ended", "at": time.time(), "state": "ended"})
    await asyncio.sleep(0)  # its grace has begun
    await closing.aclose()  # replica A stops within the grace
    other.timeline_event("s1", {"event": "ended", "at": time.time(), "reason": "bot_ended"})  # the report, at B
    await other.aclose()
    pushed = [entry["data"] for _, entry in await outbox.claim(time.time() + 60, 30, 10)]
    assert [data.get("reason") for data in pushed] == ["bot_ended"]  # the bot's own end, as its report said
