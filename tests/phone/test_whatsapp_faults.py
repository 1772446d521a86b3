"""WhatsApp calls when something goes wrong, the dispatcher's bots played by the stand-in
(tests/dispatcher/standin_bot.py) and Meta by its fake (tests/fakes/whatsapp.py): a number whose key is
revoked or unknown, Graph answering a 5xx after doing an answer, a session that ends while its call is
being answered, a replica at its bound of calls, a replayed connect, and a bot slower than Meta's ring.

The stand-in answers an offer with `answer-to:` and the offer: here the fake judges the SDP after that
prefix, so a call can be accepted (everything else about the fake is as strict as it is)."""

from __future__ import annotations

import asyncio
import gc
import json
import time
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import dispatcher.whatsapp.calls as whatsapp_calls
import tests.fakes.whatsapp as fake_meta
from dispatcher.app import create_app
from dispatcher.settings import Settings, SettingsError
from dispatcher.store.memory import LocalOnce
from dispatcher.whatsapp.hang_ups import SENDING_SECONDS, HangUps
from tests.fakes.server import serve
from tests.fakes.whatsapp import PHONE_NUMBER_ID, FakeWhatsApp, FakeWhatsAppCall
from tests.phone.test_whatsapp_webhook import OFFER, Meta, dispatcher

KEY, ADMIN = "support-key-0123456789abcdef", "admin-key-0123456789abcdef"
KEYED = {"DISPATCHER_API_KEYS": f"support:{KEY}", "DISPATCHER_ADMIN_KEYS": ADMIN,
         "BOT_CHANNEL_TOKEN": "whatsapp-faults-channel-token-0123456789"}


@pytest.fixture(autouse=True)
def standin_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_MODE", "serve")
    strict: Callable[[Any], str | None] = fake_meta._invalid_answer
    monkeypatch.setattr(fake_meta, "_invalid_answer",
                        lambda sdp: strict(sdp.removeprefix("answer-to:") if isinstance(sdp, str) else sdp))


@pytest.fixture
async def meta() -> AsyncIterator[Meta]:
    with serve(FakeWhatsApp()) as fake:
        async with dispatcher(fake) as running:
            yield running


async def deliver(meta: Meta, webhook: tuple[bytes, dict[str, str]]) -> tuple[int, dict[str, Any]]:
    body, headers = webhook
    answer = await meta.dispatcher.client.post("/phone/whatsapp", content=body, headers=headers)
    await settled(meta)
    return answer.status_code, answer.json()


async def settled(meta: Meta) -> None:
    calls = meta.dispatcher.state.whatsapp
    assert calls is not None
    await calls.settled()


def sent(meta: Meta) -> list[str]:
    return [c.json()["action"] for c in meta.fake.calls_to("POST", "/calls")]


async def session_status(meta: Meta, session_id: str) -> str:
    return str((await meta.dispatcher.client.get(f"/sessions/{session_id}")).json()["status"])


async def test_a_number_whose_key_is_revoked_has_its_calls_rejected() -> None:
    with serve(FakeWhatsApp()) as fake:
        async with dispatcher(fake, f"{PHONE_NUMBER_ID}=support", KEYED) as meta:
            answered = fake.ring(OFFER)
            await deliver(meta, fake.connect_webhook(answered))
            assert answered.state == "accepted"
            revoked = await meta.dispatcher.client.delete("/keys/support", headers={"Authorization": f"Bearer {ADMIN}"})
            assert revoked.status_code == 204
            call = fake.ring(OFFER)
            assert await deliver(meta, fake.connect_webhook(call)) == (200, {"events": 1, "taken": 1})
            assert (call.state, call.actions) == ("rejected", ["reject"])
            assert len(meta.launches) == 1  # the revoked key's call launched nothing


def test_a_number_naming_no_configured_key_stops_the_boot() -> None:
    env = {**FakeWhatsApp().env(f"{PHONE_NUMBER_ID}=support,106540352242999=ghost"), **KEYED,
           "WHATSAPP_GRAPH_URL": "https://graph.facebook.com/v23.0"}
    with pytest.raises(SettingsError, match="ghost.*DISPATCHER_API_KEYS"):
        create_app(Settings.from_env(env), env=env, rooms=None)


@pytest.mark.parametrize(("done", "requests"), [("pre_accept", ["pre_accept", "accept"]),
                                                ("accept", ["pre_accept", "accept", "accept"])])
async def test_an_answer_meta_did_then_answered_5xx_keeps_the_call(meta: Meta, done: str, requests: list[str]) -> None:
    meta.fake.done_then_fail[done] = 500
    call = meta.fake.ring(OFFER)
    await deliver(meta, meta.fake.connect_webhook(call))
    assert (call.state, call.actions) == ("accepted", ["pre_accept", "accept"])
    assert sent(meta) == requests  # never a blind repeat of a pre_accept, never a reject
    assert await session_status(meta, meta.launches[0]) not in ("ended", "failed")


async def test_a_session_stopped_while_its_call_is_pre_accepted_rejects_the_call(meta: Meta) -> None:
    held = meta.fake.hold(path_contains="/calls", times=1)
    call = meta.fake.ring(OFFER)
    body, headers = meta.fake.connect_webhook(call)
    assert (await meta.dispatcher.client.post("/phone/whatsapp", content=body, headers=headers)).status_code == 200
    assert await meta.fake.eventually(lambda: held.caught == 1)
    assert (await meta.dispatcher.client.delete(f"/sessions/{meta.launches[0]}")).status_code in (202, 204)
    held.release()
    await settled(meta)
    assert (call.state, call.actions) == ("rejected", ["pre_accept", "reject"])
    assert call.call_id not in meta.dispatcher.state.whatsapp._live  # noqa: SLF001 (nothing left behind)


async def test_a_session_stopped_while_its_call_is_accepted_terminates_the_call(meta: Meta) -> None:
    meta.fake.hold(path_contains="/calls", times=1).release()  # the pre_accept passes…
    held = meta.fake.hold(path_contains="/calls", times=1)  # …the accept is held
    call = meta.fake.ring(OFFER)
    body, headers = meta.fake.connect_webhook(call)
    assert (await meta.dispatcher.client.post("/phone/whatsapp", content=body, headers=headers)).status_code == 200
    assert await meta.fake.eventually(lambda: held.caught == 1)
    assert (await meta.dispatcher.client.delete(f"/sessions/{meta.launches[0]}")).status_code in (202, 204)
    held.release()
    await settled(meta)
    assert (call.state, call.actions) == ("terminated", ["pre_accept", "accept", "terminate"])


async def test_a_replica_at_its_bound_of_calls_answers_503_and_meta_s_retry_is_taken(
        meta: Meta, monkeypatch: pytest.MonkeyPatch) -> None:
    call = meta.fake.ring(OFFER)
    webhook = meta.fake.connect_webhook(call)
    monkeypatch.setattr(whatsapp_calls, "MAX_TASKS", 0)
    status, answer = await deliver(meta, webhook)
    assert (status, answer["error"]["code"]) == (503, "whatsapp_busy")
    monkeypatch.setattr(whatsapp_calls, "MAX_TASKS", 1_000)
    assert await deliver(meta, webhook) == (200, {"events": 1, "taken": 1})  # its one-time record was not spent
    assert call.state == "accepted"


async def test_a_connect_signed_longer_ago_than_a_call_rings_is_skipped(meta: Meta) -> None:
    call = meta.fake.ring(OFFER)
    body, _ = meta.fake.connect_webhook(call)
    payload = json.loads(body)
    payload["entry"][0]["changes"][0]["value"]["calls"][0]["timestamp"] = str(int(time.time()) - 9 * 86_400)
    assert await deliver(meta, meta.fake.signed(payload)) == (200, {"events": 1, "taken": 0})
    assert meta.launches == [] and meta.fake.calls == []


async def test_a_bot_slower_than_meta_s_ring_leaves_the_caller_not_answered() -> None:
    # The stand-in's cold start (a process spawned, its answer signalled) takes longer than this ring.
    with serve(FakeWhatsApp(ring_seconds=0.05)) as fake:
        async with dispatcher(fake) as meta:
            call = fake.ring(OFFER)
            await deliver(meta, fake.connect_webhook(call))
            await asyncio.sleep(0)
            # What the caller got: Meta's "not answered". The dispatcher's answer and its reject came too late.
            assert (call.state, call.actions) == (fake_meta.NOT_ANSWERED, [])
            assert sent(meta) == ["pre_accept", "reject"]
            events = (await meta.dispatcher.client.get(f"/sessions/{meta.launches[0]}/timeline")).json()["events"]
            answer = next(e for e in events if e["event"] == "whatsapp_answer")
            assert answer["action"] == "reject" and "not_answered" in answer["refused"]
            assert "stop_requested" in [e["event"] for e in events]


def test_any_terminate_from_meta_ends_the_fake_s_call() -> None:
    fake = FakeWhatsApp()
    for status in ("COMPLETED", "FAILED", "REJECTED"):
        call: FakeWhatsAppCall = fake.ring(OFFER)
        fake.terminate_webhook(call, status)
        assert call.state == "terminated"


async def test_a_replica_killed_as_it_takes_the_end_of_a_call_it_could_not_accept_leaves_its_terminate_owed(
        meta: Meta, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = meta.dispatcher.state.whatsapp
    assert calls is not None
    hang_ups = calls.hang_ups
    taking, looking_up = hang_ups.first_to_end, hang_ups.session_ended
    killed, store_answers = asyncio.Event(), asyncio.Event()

    async def killed_once_taken(call_id: str) -> bool:  # SIGKILL, OOM, node loss, the moment the end is its own
        await taking(call_id)
        killed.set()
        raise asyncio.CancelledError("replica killed")

    async def slow_store(session_id: str) -> None:  # the session's end looked up in a store slow to answer
        await store_answers.wait()
        await looking_up(session_id)

    monkeypatch.setattr(hang_ups, "first_to_end", killed_once_taken)
    monkeypatch.setattr(hang_ups, "session_ended", slow_store)
    meta.fake.hold(path_contains="/calls", times=1).release()  # the pre_accept passes…
    held = meta.fake.hold(path_contains="/calls", times=1)  # …the accept is held, then answered 503, as its retry
    call = meta.fake.ring(OFFER)
    body, headers = meta.fake.connect_webhook(call)
    assert (await meta.dispatcher.client.post("/phone/whatsapp", content=body, headers=headers)).status_code == 200
    assert await meta.fake.eventually(lambda: held.caught == 1)
    meta.fake.fail(503, times=2, path_contains="/calls")
    held.release()
    await asyncio.wait_for(killed.wait(), 30)
    assert sent(meta) == ["pre_accept", "accept", "accept"]  # the accept may have landed: a terminate is due
    # Another replica's sweep, once the owed terminate's claim ran out, sends it.
    book = meta.dispatcher.state.replication.coordination.whatsapp_calls
    survivor = HangUps(book, LocalOnce(), calls.graph, calls.sessions.timeline,
                       clock=lambda: time.time() + SENDING_SECONDS + 1)
    await survivor.sweep()
    assert sent(meta) == ["pre_accept", "accept", "accept", "terminate"]
    store_answers.set()
    await settled(meta)


async def test_a_session_end_seen_as_the_dispatcher_shuts_down_leaves_its_hang_up_owed(meta: Meta) -> None:
    call = meta.fake.ring(OFFER)
    await deliver(meta, meta.fake.connect_webhook(call))
    assert call.state == "accepted"
    calls = meta.dispatcher.state.whatsapp
    assert calls is not None
    session_id = meta.launches[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        calls.sessions.timeline.note(session_id, "stop_requested")  # its end, seen just as the replica closes
        await calls.aclose()
        gc.collect()
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []
    assert sent(meta) == ["pre_accept", "accept"]  # nothing sent while closing…
    book = meta.dispatcher.state.replication.coordination.whatsapp_calls
    owed = await book.due(time.time() + 1, time.time() + SENDING_SECONDS, 10)
    assert [(owed_session, booked.call_id if booked else None) for owed_session, booked in owed] == [
        (session_id, call.call_id)]  # …owed, for the next replica's sweep
