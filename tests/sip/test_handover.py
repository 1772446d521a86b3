"""The callers' audio and keys handed from PJSIP's threads to the event loop in batches (one wake-up of
the loop for all that came since the last), in the order they came; and the stream's keepalive, one
timer a second rather than one per frame."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sipedge import call_flow
from sipedge.call_flow import SILENCE, CallFlow
from sipedge.handover import Handover, handover
from sipedge.playout import Playout
from sipedge.sip_end import SipEnd


async def test_what_is_put_while_the_loop_is_busy_is_delivered_in_order_with_one_wake_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    wake_ups: list[object] = []
    real = loop.call_soon_threadsafe

    def counted(callback: object, *args: object) -> asyncio.Handle:
        wake_ups.append(callback)
        return real(callback, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "call_soon_threadsafe", counted)
    got: list[tuple[str, int]] = []
    calls = {name: (lambda item, name=name: got.append((name, item))) for name in ("a", "b")}
    batch = handover(loop)
    for index in range(50):  # the loop runs nothing meanwhile: one batch
        batch.put(calls["a" if index % 2 else "b"], index)
    await asyncio.sleep(0)
    assert got == [("a" if index % 2 else "b", index) for index in range(50)]
    assert len(wake_ups) == 1
    batch.put(calls["a"], 50)  # the next batch wakes the loop again
    await asyncio.sleep(0)
    assert got[-1] == ("a", 50) and len(wake_ups) == 2


async def test_items_put_from_other_threads_each_arrive_once_in_their_threads_order() -> None:
    loop = asyncio.get_running_loop()
    got: dict[str, list[int]] = {"media": [], "sip": []}
    done = asyncio.Event()

    def deliver(item: tuple[str, int]) -> None:
        got[item[0]].append(item[1])
        if sum(map(len, got.values())) == 4000:
            done.set()

    def put_all(name: str) -> None:
        for index in range(2000):
            handover(loop).put(deliver, (name, index))

    threads = [threading.Thread(target=put_all, args=(name,)) for name in got]
    for thread in threads:
        thread.start()
    await asyncio.wait_for(done.wait(), 10)
    for thread in threads:
        thread.join()
    assert got == {"media": list(range(2000)), "sip": list(range(2000))}


async def test_a_flow_hands_the_callers_audio_and_keys_over_in_the_order_they_came() -> None:
    flow = CallFlow(asyncio.get_running_loop(), Playout())
    flow.answered = True

    def media_thread() -> None:
        flow.heard(b"\x01" * 320)
        flow.pressed("5")
        flow.heard(b"\x02" * 320)

    threading.Thread(target=media_thread).start()
    got = [await asyncio.wait_for(flow.caller_audio.get(), 5) for _ in range(3)]
    assert got == [b"\x01" * 320, "5", b"\x02" * 320]


class _HeldScheduling:
    """The loop, but the media thread's wake-up of it (its batch's scheduling) waits until the SIP thread is
    done: the preemption, made certain, of the media thread between its put's append and its scheduling."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.media_scheduling = threading.Event()
        self.sip_done = threading.Event()

    def call_soon_threadsafe(self, callback: object, *args: object) -> asyncio.Handle:
        if threading.current_thread().name == "media":
            self.media_scheduling.set()
            self.sip_done.wait(5)
        return self._loop.call_soon_threadsafe(callback, *args)  # type: ignore[arg-type]


async def test_a_key_pressed_just_before_the_hang_up_is_queued_before_the_call_is_gone() -> None:
    loop = asyncio.get_running_loop()
    held = _HeldScheduling(loop)
    flow = CallFlow(loop, Playout())
    flow._handover = Handover(held)  # type: ignore[arg-type]  # only call_soon_threadsafe is used
    flow.answered = True
    gone = SipEnd("caller", "bye")

    def sip_thread() -> None:  # the key joins the media thread's batch, then the BYE comes
        held.media_scheduling.wait(5)
        flow.pressed("5")
        flow.sip_ended(gone)
        flow.hung_up(200)
        held.sip_done.set()

    threads = [threading.Thread(target=flow.heard, args=(b"\x01" * 320,), name="media"),
               threading.Thread(target=sip_thread, name="sip")]
    for thread in threads:
        thread.start()
    await asyncio.wait_for(flow.caller_gone.wait(), 5)
    for thread in threads:
        thread.join()
    assert flow.sip_end == gone  # told before the hang-up, as the flow relies on
    assert [flow.caller_audio.get_nowait() for _ in range(flow.caller_audio.qsize())] == [b"\x01" * 320, "5"]


async def test_silence_keeps_a_quiet_stream_alive_and_none_is_sent_while_the_caller_is_heard(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(call_flow, "KEEPALIVE_SECONDS", 0.5)
    flow = CallFlow(asyncio.get_running_loop(), Playout())
    stop = flow.keep_alive()
    try:
        # Not answered: the caller's audio is not queued, so the stream hears the keepalive's silence.
        for _ in range(3):
            assert await asyncio.wait_for(flow.caller_audio.get(), 5) == SILENCE
            flow.heard(b"\x03" * 320)
        flow.answered = True
        heard: list[bytes | str] = []
        for _ in range(25):  # 0.5 s of frames every 20 ms: never the keepalive's 0.5 s without one
            flow.heard(b"\x04" * 320)
            await asyncio.sleep(0.02)
            while not flow.caller_audio.empty():
                heard.append(flow.caller_audio.get_nowait())
        assert SILENCE not in heard and len(heard) >= 20
    finally:
        stop()
    await asyncio.sleep(1.0)
    assert flow.caller_audio.empty()  # stopped: no more silence
