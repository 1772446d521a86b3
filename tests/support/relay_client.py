"""The aiortc user, run inside the client namespace: `ip netns exec <ns> python -m tests.support.relay_client`.

Reads one JSON line on stdin: {"ice_config": {...} | null, "wav": path, "listen_seconds": 3.0,
"offer_url": url | null, "headers": {...}}. With an `offer_url` it posts its offer there (the
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

from aiortc.stats import RTCTransportStats

from tests.support.audio import echo_similarity, read_wav
from tests.support.webrtc_client import WebRTCClient

OVERALL_TIMEOUT = 60.0


async def stdio_signal(offer: dict[str, Any]) -> dict[str, Any]:
    print(json.dumps({"offer": offer}), flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    answer: dict[str, Any] = json.loads(line)["answer"]
    return answer


async def session(request: dict[str, Any]) -> dict[str, Any]:
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
        result = await client.talk(request["wav"], listen_seconds=float(request.get("listen_seconds", 3.0)))
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
