"""The aiortc user, run inside the client namespace: `ip netns exec <ns> python -m tests.support.relay_client`.

Reads one JSON line on stdin: {"ice_config": {...} | null, "wav": path, "listen_seconds": 15.0
(the most it waits for the whole echo), "offer_url": url | null, "start_url": url | null,
"headers": {...}}. With a `start_url` it first
starts a session there and takes the offer URL and `iceConfig` from the answer (printing
{"started": session_id, "ice_config": ...}). With an `offer_url` it posts its offer there (the
dispatcher); without one it prints {"offer": {sdp, type}} and reads {"answer": {...}} on stdin,
so the test can carry signalling itself. Then it speaks the WAV, listens, and prints its result:
{"replied", "reply_latency", "connect_to_first_audio", "similarity", "local_type",
"remote_type", "remote_address", "bytes_sent", "bytes_received", "connected_seconds"}.
Everything it does is bounded by OVERALL_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx
from aiortc.stats import RTCTransportStats

from tests.support.audio import echo_similarity, read_wav
from tests.support.webrtc_client import TalkResult, WebRTCClient

OVERALL_TIMEOUT = 60.0


async def stdio_signal(offer: dict[str, Any]) -> dict[str, Any]:
    print(json.dumps({"offer": offer}), flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    answer: dict[str, Any] = json.loads(line)["answer"]
    return answer


async def start(request: dict[str, Any]) -> dict[str, Any]:
    """`POST /start` on the dispatcher: its answer names the offer URL and the ICE servers."""
    async with httpx.AsyncClient(timeout=30.0) as http:
        response = await http.post(request["start_url"], json={"body": {}}, headers=request.get("headers") or {})
    if response.status_code not in (200, 201):
        raise RuntimeError(f"POST /start answered {response.status_code}: {response.text}")
    answer: dict[str, Any] = response.json()
    return answer


async def session(request: dict[str, Any]) -> dict[str, Any]:
    if request.get("start_url"):
        answer = await start(request)
        base = request["start_url"].rsplit("/start", 1)[0]
        request = {**request, "offer_url": base + answer["offer_url"], "ice_config": answer.get("iceConfig")}
        print(json.dumps({"started": answer["session_id"], "ice_config": answer.get("iceConfig")}), flush=True)
    offer_url = request.get("offer_url")
    client = WebRTCClient(
        offer_url or "stdio:",
        headers=request.get("headers") or {},
        ice_config=request.get("ice_config"),
        signal=None if offer_url else stdio_signal,
        connect_timeout=20.0,
    )
    async with client:
        local_type, remote_type, remote_address = client.selected_pair()
        await client.talk(request["wav"], listen_seconds=0.2)
        result = await whole_echo(client, read_wav(request["wav"]).seconds, float(request.get("listen_seconds", 15.0)))
        sent, received = await transport_bytes(client)
        assert client.connected_at is not None
        seconds = time.monotonic() - client.connected_at
    return {
        "replied": result.replied,
        "reply_latency": result.reply_latency,
        "connect_to_first_audio": result.connect_to_first_audio,
        "similarity": echo_similarity(read_wav(request["wav"]), result.reply_audio, result.reply_sample_rate)
        if result.replied
        else None,
        "local_type": local_type,
        "remote_type": remote_type,
        "remote_address": remote_address,
        "summary": result.summary(),
        "bytes_sent": sent,  # DTLS transport level: RTP, RTCP and the data channel, as the relay carries them
        "bytes_received": received,
        "connected_seconds": seconds,
    }


async def whole_echo(client: WebRTCClient, speech_seconds: float, deadline_seconds: float) -> TalkResult:
    """Listens until the bot's reply is as long as the speech (the parrot's echo) and has been
    quiet for a second, or the deadline passes: complete however busy the machine is."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        result = client.result()
        after = [s for s in result.segments if s.start > (result.speech_end_at or 0.0)]
        replied = bool(after) and after[-1].end - after[0].start >= 0.95 * speech_seconds  # beep + echo
        assert client.connected_at is not None
        quiet = bool(after) and time.monotonic() - client.connected_at - after[-1].end > 1.0
        if (replied and quiet) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.1)


async def transport_bytes(client: WebRTCClient) -> tuple[int, int]:
    stats = await client.pc.getStats()
    transports = [s for s in stats.values() if isinstance(s, RTCTransportStats)]
    return sum(t.bytesSent for t in transports), sum(t.bytesReceived for t in transports)


def main() -> int:
    request = json.loads(sys.stdin.readline())
    print(json.dumps({"result": asyncio.run(asyncio.wait_for(session(request), OVERALL_TIMEOUT))}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
