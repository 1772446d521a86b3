"""A bot sends its session's spans before it hangs up on its dispatcher.

The dispatcher stops a session's machine as soon as the call or the bot's channel is gone, and a stop
leaves the process only a few seconds (`LOCAL_STOP_GRACE_SECONDS`, a platform's stop timeout). Sent
at exit, after the teardown, the spans were lost with the process on a busy machine. Here the order
is checked, not a time: the export has been answered by the collector before the dispatcher sees the
bot's channel close, so no stop that the end of the session causes can come before it. The batch
delay is the SDK's default (5 s), so nothing but the flush at the session's end sends them in time."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.support.http_client import api_client
from tests.support.otlp_receiver import otlp_receiver
from tests.support.processes import run_dispatcher
from tests.support.waiting import until

TRACED = Path(__file__).resolve().parents[1] / "bots" / "traced.py"  # ends its session by itself


def channel_closed_at(log: str, session_id: str) -> float | None:
    """When the dispatcher logged the session's bot hanging up its channel (the log's wall clock)."""
    for line in log.splitlines():
        if f"bot local-{session_id} disconnected" in line:
            return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


@pytest.mark.slow  # a real dispatcher and a real bot importing Pipecat
async def test_the_sessions_spans_reach_the_collector_before_the_bot_hangs_up_its_channel(tmp_path: Path) -> None:
    with otlp_receiver() as (endpoint, received):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "BOT_FILE": str(TRACED),
               "RESERVE_MIN_IDLE": "0", "RESERVE_MAX_IDLE": "0"}
        with run_dispatcher(tmp_path, env) as dispatcher:
            async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
                answer = await api.post("/start", json={"transport": "websocket", "body": {}})
                assert answer.status_code == 201, answer.text
                start = answer.json()
                async with connect(f"{start['wsUrl']}/{start['token']}", open_timeout=30):
                    await until(lambda: channel_closed_at(dispatcher.log(), start["sessionId"]),
                                "the bot to hang up its channel")
            spans = await received.arrived(lambda s: {"bot.session", "conversation"} <= {x.name for x in s},
                                           timeout=30, context=dispatcher.log)
            closed = channel_closed_at(dispatcher.log(), start["sessionId"])
    assert closed is not None
    sent = {span.name: span.received_at for span in spans if span.name in ("bot.session", "conversation")}
    # The log keeps milliseconds: compared at that precision, the collector had them first.
    assert all(int(at * 1000) <= int(closed * 1000) for at in sent.values()), (sent, closed)
