"""Finding: a bot's usage row whose count was a JSON integer too large for a float (`1` and 400
zeros, which Python's json reads as an int) raised OverflowError in the rows' check instead of its
own refusal. A `usage.so_far` request was answered 500 `dispatcher_error` with a traceback in the
log, before the one-a-second limit counted it (so every frame logged one); an `ended` report
carrying it ended the channel's reader, so the bot's link was dropped. Now such a count is refused
as any count out of range is: 400 `invalid_usage`, and the report a malformed frame, ignored.

A real app on a loopback port, the bot dialling its channel (tests/dispatcher/channel/)."""

from __future__ import annotations

import asyncio
import json
import time

from botchannel.contract import Hello, Reply, Request, encode, parse_frame
from botchannel.usage import METHOD_USAGE_SO_FAR
from tests.dispatcher.channel.test_bot_requests import served  # noqa: F401 (fixture: a real app and its channel)
from tests.dispatcher.channel.test_channel import bot

SESSION = "cccccccccccccccccccccccc"
HUGE = 10**400  # a JSON integer no float holds
ROW = {"kind": "tts", "processor": "CartesiaTTSService#0", "model": "sonic", "characters": HUGE}


async def ask(ws, method: str, params: dict, request_id: int) -> Reply:
    await ws.send(encode(Request(request_id, method, params)))
    reply = parse_frame(await asyncio.wait_for(ws.recv(), 30))
    assert isinstance(reply, Reply)
    return reply


async def test_a_usage_report_with_a_count_too_large_for_a_float_is_refused_not_a_500(served):  # noqa: F811
    _, url = served
    ws = await bot(url, Hello(machine_id="m-huge", session_id=SESSION))
    answer = await ask(ws, METHOD_USAGE_SO_FAR, {"usage": [ROW]}, 1)
    assert answer.error is not None, answer
    assert (answer.error.status, answer.error.code) == (400, "invalid_usage"), answer.error
    assert "characters" in answer.error.message
    await ws.close()


async def test_an_ended_report_with_such_a_count_leaves_the_bots_channel_working(served):  # noqa: F811
    app, url = served
    ws = await bot(url, Hello(machine_id="m-ended", session_id=SESSION))
    # Sent by hand: the bot's own encoder would refuse to write it.
    await ws.send(json.dumps({"type": "report", "event": "ended", "session_id": SESSION, "t": time.time(),
                              "usage": [ROW]}))
    answer = await ask(ws, METHOD_USAGE_SO_FAR, {"usage": [{**ROW, "characters": 12}]}, 2)
    assert answer.ok, answer.error  # the link still reads: the bad report was ignored, not fatal
    assert app.state.voicefleet.channels.link_for(SESSION) is not None
    await ws.close()
