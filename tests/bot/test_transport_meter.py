"""The bot host's measure of its WebRTC call (bot/transport_meter.py), on two real aiortc peers
talking over the loopback: the selected ICE pair's types as aioice nominated them and the bytes
aiortc's DTLS transport counted, kept past the connection's close, so the `ended` report has the
whole call; and its periodic report goes to the dispatcher's handler beside the services' use."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack
from aiortc.stats import RTCTransportStats

from bot import usage_reports
from bot.ice import use_loopback_candidates
from bot.transport_meter import TransportMeter
from bot.usage_reports import report_usage
from botchannel.contract import RequestFailed
from botchannel.transport_use import parse_transport
from dispatcher.store.transport_so_far import MemoryTransportSoFar
from dispatcher.store.usage_so_far import MemorySoFar
from dispatcher.usage.so_far import UsageSoFar


@pytest.fixture(autouse=True)
def loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", aioice.ice.get_host_addresses)  # put back after
    use_loopback_candidates()
    yield


async def connected_pair() -> tuple[RTCPeerConnection, RTCPeerConnection]:
    caller, bot = RTCPeerConnection(), RTCPeerConnection()
    caller.addTrack(AudioStreamTrack())  # 20 ms of silence at a time, Opus-encoded: a real media stream
    bot.addTrack(AudioStreamTrack())
    await caller.setLocalDescription(await caller.createOffer())
    await bot.setRemoteDescription(caller.localDescription)
    await bot.setLocalDescription(await bot.createAnswer())
    await caller.setRemoteDescription(bot.localDescription)
    async with asyncio.timeout(30):
        while bot.connectionState != "connected" or caller.connectionState != "connected":
            await asyncio.sleep(0.05)
    return caller, bot


async def dtls_bytes(pc: RTCPeerConnection) -> tuple[int, int]:
    stats = [s for s in (await pc.getStats()).values() if isinstance(s, RTCTransportStats)]
    return sum(s.bytesSent for s in stats), sum(s.bytesReceived for s in stats)


async def test_the_meter_reads_the_nominated_pair_and_the_bytes_and_keeps_them_past_the_close() -> None:
    caller, bot = await connected_pair()
    meter = TransportMeter()
    assert await meter.report() is None  # no connection followed: not a WebRTC call
    meter.follow(bot)
    try:
        await asyncio.sleep(1.0)  # ~50 packets each way
        during = await meter.report()
        assert during is not None and parse_transport(during) == during  # what the dispatcher takes
        assert during["local_candidate"] == "host" and during["remote_candidate"] in ("host", "prflx")
        assert during["packets_sent"] >= 20 and during["bytes_sent"] >= 20 * 20, during
    finally:
        await caller.close()
        await bot.close()
    after = await meter.report()
    assert after is not None and after["local_candidate"] == "host"  # aioice forgot it; the meter did not
    assert after["bytes_sent"] >= during["bytes_sent"] and after["bytes_received"] >= during["bytes_received"]
    # The caller's own count of the same datagrams: what one sent, the other received (loopback: none
    # lost), but for the DTLS alerts each side's close sends the other, perhaps after it stopped counting.
    sent, received = await dtls_bytes(caller)
    assert abs(after["bytes_sent"] - received) <= 3000, (after, received)
    assert abs(after["bytes_received"] - sent) <= 3000, (after, sent)


async def test_the_periodic_report_carries_the_transport_to_the_dispatcher_which_keeps_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(usage_reports, "FIRST_SECONDS", 0.05)
    kept, transports = MemorySoFar(), MemoryTransportSoFar()
    handler = UsageSoFar(kept, 1.0, lambda session_id, event: None, transports)
    link = type("Link", (), {"session_id": "s-1"})()
    carried = {"local_candidate": "relay", "remote_candidate": "relay", "bytes_sent": 9000, "bytes_received": 8000,
               "packets_sent": 50, "packets_received": 45}

    async def request(method: str, params: Mapping[str, Any], timeout: float) -> Mapping[str, Any]:
        return await handler._reported(link, params)  # type: ignore[arg-type]

    async def transport() -> dict[str, Any]:
        return dict(carried)

    task = asyncio.create_task(report_usage(request, list, transport))  # no services used: sent all the same
    try:
        async with asyncio.timeout(20):
            while await transports.get("s-1") is None:
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
    assert await transports.get("s-1") == carried and await kept.get("s-1") == ()
    await asyncio.sleep(1.1)  # past the handler's one a second
    with pytest.raises(RequestFailed) as refused:  # a count out of bounds is refused as a usage row's is
        await request("usage.so_far", {"usage": [], "transport": {**carried, "bytes_sent": float("nan")}}, 5.0)
    assert (refused.value.status, refused.value.code) == (400, "invalid_usage")
    assert await transports.get("s-1") == carried
