"""The bot control channel: its contract, its credential, and routing requests to a bot."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from botchannel.contract import (
    CHANNEL_PATH,
    Assignment,
    Hello,
    ProtocolError,
    Reply,
    ReplyError,
    Report,
    Request,
    Welcome,
    encode,
    parse_frame,
)
from dispatcher.app import create_app
from dispatcher.channel.bots import BotRequestFailed
from dispatcher.channel.credentials import BotCredentials
from dispatcher.channel.report_caps import MAX_REPEATED
from dispatcher.settings import Settings
from tests.support.dispatcher_server import serving
from tests.support.hand_dialled import hand_dialled

TOKEN = "t" * 40


@pytest.mark.parametrize(
    "frame",
    [
        Hello(machine_id="m-1", image="sha256:abc", capabilities=("webrtc",), session_id=None),
        Hello(machine_id="m-2", session_id="s-1"),
        Welcome(),
        Welcome(resume="k-Ey_0123456789abcdef"),
        Hello(machine_id="m-3", identity="a.b.c", resume="k-Ey_0123456789abcdef"),
        Request(7, "webrtc.offer", {"sdp": "v=0", "type": "offer"}),
        Reply(7, result={"sdp": "x", "type": "answer", "pc_id": "p"}),
        Reply(8, error=ReplyError(409, "already_assigned", "one session, ever")),
        Report(event="ended", session_id="s-1", t=1.5, reason="peer_disconnected", exit_code=0),
    ],
)
def test_every_frame_survives_a_round_trip(frame):
    assert parse_frame(encode(frame)) == frame


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        '{"type": "nope"}',
        '{"type": "hello", "protocol": 99, "machine_id": "m", "image": "i"}',
        '{"type": "hello", "protocol": 1, "machine_id": "", "image": "i"}',
        '{"type": "welcome", "resume": "has space"}',
        '{"type": "welcome", "resume": 7}',
        '{"type": "hello", "protocol": 1, "machine_id": "m", "image": "i", "resume": "' + "k" * 65 + '"}',
        '{"type": "request", "id": -1, "method": "x"}',
        '{"type": "request", "id": true, "method": "x"}',
        '{"type": "reply", "id": 1, "ok": false}',
        '{"type": "report", "event": "exploded", "session_id": "s", "t": 1}',
        '{"type": "report", "event": "ended", "session_id": "s", "t": "soon"}',
        # Not a time (Python's json reads them as numbers): a NaN event time made the session's
        # webhooks fail at every attempt, for good.
        '{"type": "report", "event": "ended", "session_id": "s", "t": NaN}',
        '{"type": "report", "event": "ended", "session_id": "s", "t": Infinity}',
        '{"type": "report", "event": "ended", "session_id": "s", "t": -Infinity}',
        '{"type": "report", "event": "ended", "session_id": "s", "t": 1e999}',
        '{"type": "report", "event": "ended", "session_id": "s", "t": 1' + "0" * 400 + "}",  # no float holds it
        "x" * 300_000,
    ],
)
def test_malformed_frames_are_rejected(raw):
    with pytest.raises(ProtocolError):
        parse_frame(raw)


def test_an_assignment_is_validated():
    ok = Assignment("s-1", 60, body={"lang": "en"})
    assert Assignment.from_params(ok.params()) == ok
    with pytest.raises(ProtocolError):
        Assignment.from_params({"session_id": "s", "max_session_seconds": 0})
    with pytest.raises(ProtocolError):
        Assignment.from_params({"session_id": "s", "max_session_seconds": 5, "transport": "daily"})


def test_the_daily_token_of_an_assignment_never_shows_in_its_repr():
    assert "secret-token" not in repr(Assignment("s", 5, "daily", room_url="https://r", token="secret-token"))


@pytest.fixture
async def served():
    app = create_app(Settings(bot_channel_token=TOKEN), env={}, machines=hand_dialled(), rooms=None)
    async with serving(app) as port:
        yield app, f"ws://127.0.0.1:{port}{CHANNEL_PATH}"
    await app.state.voicefleet.aclose()


def credential_for(hello: Hello) -> str:
    """The credential the dispatcher would have issued the machine saying `hello`."""
    if hello.session_id is None:
        return BotCredentials(TOKEN).issue("idle", hello.machine_id, 600)
    return BotCredentials(TOKEN).issue("session", hello.session_id, 600)


async def bot(url: str, hello: Hello):
    ws = await connect(url, additional_headers={"Authorization": f"Bearer {credential_for(hello)}"}, proxy=None)
    await ws.send(encode(hello))
    assert isinstance(parse_frame(await ws.recv()), Welcome)
    return ws


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-wrong-token-wrong-token", f"Basic {TOKEN}",
                                    f"Bearer {TOKEN}"])  # the deployment secret itself opens nothing
async def test_a_bot_without_the_credential_is_refused_before_the_handshake(served, header):
    _, url = served
    headers = {"Authorization": header} if header else {}
    with pytest.raises(InvalidStatus) as refused:
        await connect(url, additional_headers=headers, proxy=None)
    assert refused.value.response.status_code == 403


async def test_an_idle_bot_is_taken_once_and_answers_requests(served):
    app, url = served
    channels = app.state.voicefleet.channels
    ws = await bot(url, Hello(machine_id="m-1", capabilities=("webrtc",)))

    async def answer_one():
        request = parse_frame(await ws.recv())
        assert isinstance(request, Request)
        await ws.send(encode(Reply(request.id, result={"echo": request.params["x"]})))

    async with channels._changed:
        await channels._changed.wait_for(lambda: channels.idle())
    link = channels.take_idle()
    assert link is not None and link.machine_id == "m-1"
    assert channels.take_idle() is None  # taken: nobody else gets it
    answering = asyncio.create_task(answer_one())
    assert await link.request("ping", {"x": 1}) == {"echo": 1}
    await answering
    await ws.close()


async def test_a_bots_refusal_keeps_its_status_and_code(served):
    app, url = served
    channels = app.state.voicefleet.channels
    ws = await bot(url, Hello(machine_id="m-2", session_id="s-9"))
    link = await channels.wait_link("s-9", 5)
    assert link is not None

    async def refuse():
        request = parse_frame(await ws.recv())
        await ws.send(encode(Reply(request.id, error=ReplyError(409, "already_assigned", "no"))))

    refusing = asyncio.create_task(refuse())
    with pytest.raises(BotRequestFailed) as failed:
        await link.request("assign", {})
    await refusing
    assert (failed.value.status, failed.value.code) == (409, "already_assigned")
    await ws.close()


async def test_a_request_to_a_bot_that_hangs_up_fails_at_once_with_502(served):
    app, url = served
    channels = app.state.voicefleet.channels
    ws = await bot(url, Hello(machine_id="m-3", session_id="s-10"))
    link = await channels.wait_link("s-10", 5)

    async def hang_up():
        parse_frame(await ws.recv())
        await ws.close()

    hanging = asyncio.create_task(hang_up())
    with pytest.raises(BotRequestFailed) as failed:
        await link.request("webrtc.offer", {"sdp": "v=0", "type": "offer"}, timeout=60)
    await hanging
    assert failed.value.status == 502
    async with channels._changed:
        await channels._changed.wait_for(lambda: channels.link_for("s-10") is None)


async def reports_heard(served, session_id: str, *frames: str):
    """What the channel's report listeners hear of `frames`, sent by the bot of `session_id`; its link."""
    app, url = served
    channels = app.state.voicefleet.channels
    seen: list[Report] = []
    channels.report_listeners.append(lambda link, report: seen.append(report))
    ws = await bot(url, Hello(machine_id=f"m-{session_id}", session_id=session_id))
    link = await channels.wait_link(session_id, 5)
    for frame in frames:
        await ws.send(frame)
    await ws.close()
    await link.closed.wait()
    return seen, link


async def test_a_report_for_another_session_is_ignored(served):
    seen, _ = await reports_heard(
        served, "s-11", json.dumps({"type": "report", "event": "joined", "session_id": "s-other", "t": 1.0}),
        encode(Report(event="joined", session_id="s-11", t=2.0)))
    assert [r.session_id for r in seen] == ["s-11"]


async def test_a_reports_time_is_the_dispatchers_time_of_receipt_never_the_bots(served, caplog):
    """A bot's `t` is its own clock, a hostile bot's choice: a year ahead or long ago, every listener
    (the timeline, hence the lifecycle webhooks and the reserve's timing) gets the time it arrived."""
    before = time.time()
    seen, link = await reports_heard(
        served, "s-14", encode(Report(event="joined", session_id="s-14", t=before + 365 * 86400)),
        encode(Report(event="ended", session_id="s-14", t=1.0, reason="peer_left")))
    after = time.time()
    assert [r.event for r in seen] == ["joined", "ended"]
    assert all(before - 0.001 <= r.t <= after + 0.001 for r in seen), [r.t for r in seen]
    assert link.reports["joined"].t == seen[0].t
    assert "ahead of this replica's clock" in caplog.text  # the future one called out


async def test_a_bot_repeating_its_reports_is_heard_once_for_each_end_and_a_few_times_for_each_error(served, caplog):
    """A bot's reports are its own code's: one that sends them in a loop (200 `ended`, 200 `error`) would fill its
    session's timeline past its bound, pushing out how its call ended and what it is priced at, and every
    listener's queue with it. Its session's `ended` is heard once, its `error` MAX_REPEATED times."""
    frames = [encode(Report(event="joined", session_id="s-15", t=1.0))]
    for n in range(200):
        frames += [encode(Report(event="ended", session_id="s-15", t=2.0, reason="peer_left")),
                   encode(Report(event="error", session_id="s-15", t=2.0, detail=f"service down {n}"))]
    seen, _ = await reports_heard(served, "s-15", *frames)
    assert [r.event for r in seen].count("ended") == 1 and [r.event for r in seen].count("joined") == 1
    errors = [r.detail for r in seen if r.event == "error"]
    assert errors == [f"service down {n}" for n in range(MAX_REPEATED)], errors
    assert caplog.text.count("reports for s-15 past") == 2  # said once for each kind, not per report


async def test_a_bot_that_dials_again_is_not_counted_anew(served):
    """The bound is its session's, not its connection's: a bot that hangs up its channel and dials again, five
    times, each time sending `ended` and 8 `error`s, is heard once and 8 times in all."""
    app, url = served
    channels = app.state.voicefleet.channels
    seen: list[Report] = []
    channels.report_listeners.append(lambda link, report: seen.append(report))
    for n in range(5):
        ws = await bot(url, Hello(machine_id="m-s-16", session_id="s-16"))
        link = await channels.wait_link("s-16", 5)
        for frame in (encode(Report(event="ended", session_id="s-16", t=1.0, reason="peer_left")),
                      *(encode(Report(event="error", session_id="s-16", t=1.0, detail=f"{n}.{i}")) for i in range(8))):
            await ws.send(frame)
        await ws.close()
        await asyncio.wait_for(link.closed.wait(), 30)
    assert [r.event for r in seen].count("ended") == 1 and [r.event for r in seen].count("error") == MAX_REPEATED


async def test_a_second_bot_naming_a_served_session_is_not_routed_to_it(served):
    app, url = served
    channels = app.state.voicefleet.channels
    first = await bot(url, Hello(machine_id="m-5", session_id="s-12"))
    intruder = Hello(machine_id="m-intruder", session_id="s-12")  # even with the session's credential
    ws = await connect(url, additional_headers={"Authorization": f"Bearer {credential_for(intruder)}"}, proxy=None)
    await ws.send(encode(intruder))
    with pytest.raises(ConnectionClosed):  # closed without a welcome
        parse_frame(await ws.recv())
    assert channels.link_for("s-12").machine_id == "m-5"
    await first.close()
    reconnected = await bot(url, Hello(machine_id="m-5", session_id="s-12"))  # its own bot may come back
    assert await channels.wait_until(lambda: channels.link_for("s-12") is not None, 5)
    await reconnected.close()
