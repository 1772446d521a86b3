"""The eval's caller never drops a call because ICE consent checks were answered late: aioice, under
aiortc, gave each 0.5 s and dropped the connection after 6 in a row, which a busy machine's late
answers did ~30 s into fine calls. A real aiortc peer that answers every check late, and the caller
stays connected for many times those 6 checks, timed by the peer's own consent checks, which the caller
answers (the bot's host decides about consent: bot/ice_consent.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import aioice.ice
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from voicefleet.loadtest.webrtc import WebRTCClient, ice_transports

CHECK_INTERVAL = 0.1  # aioice's 5 s between checks, shortened: the checks' answers are what is tested
LATE = 0.8  # past aioice's 0.5 s for an answer; a busy machine's answer
WAIT = 60.0  # bound on any wait: generous for a loaded machine


PEER_CHECKS = 60  # the peer's checks, ~0.1 s apart: aioice's own caller gave up after 6 of its own, ~0.6 s apart


def answering(pc: RTCPeerConnection, late: float | None, answered: asyncio.Queue[None] | None = None) -> None:
    """Makes the ICE agent of `pc` answer each check `late` seconds after it came (None: at once), noting each."""
    loop = asyncio.get_running_loop()
    for ice in ice_transports(pc):
        connection = ice._connection
        answer = connection.request_received

        def received(*request: Any, answer: Any = answer) -> None:
            def now() -> None:
                answer(*request)
                if answered is not None:
                    answered.put_nowait(None)
            if late is None:
                now()
            else:
                loop.call_later(late, now)

        connection.request_received = received


def test_a_caller_whose_peer_answers_every_consent_check_late_stays_connected(monkeypatch: pytest.MonkeyPatch
                                                                             ) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", CHECK_INTERVAL)

    async def run() -> None:
        peer = RTCPeerConnection()

        async def answer(offer: dict[str, Any]) -> dict[str, Any]:
            await peer.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type=offer["type"]))
            await peer.setLocalDescription(await peer.createAnswer())
            return {"sdp": peer.localDescription.sdp, "type": peer.localDescription.type}

        client = WebRTCClient("http://unused.test/api/offer", signal=answer, ice_loopback=False, connect_timeout=WAIT)
        try:
            await client.connect()
            answering(peer, LATE)
            peer_checks: asyncio.Queue[None] = asyncio.Queue()
            answering(client.pc, None, peer_checks)
            dropped = asyncio.ensure_future(client.ended.wait())
            for _ in range(PEER_CHECKS):
                checked = asyncio.ensure_future(peer_checks.get())
                await asyncio.wait({checked, dropped}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
                checked.cancel()
                assert not client.ended.is_set(), f"the caller dropped the call ({client.pc.connectionState})"
                assert checked.done(), "the peer checked no consent"
            dropped.cancel()
            assert client.pc.connectionState == "connected"
        finally:
            await client.close()
            await peer.close()

    asyncio.run(run())
