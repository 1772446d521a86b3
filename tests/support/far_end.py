"""The far end of calls placed through the strict Twilio fake, for a fleet of real dispatchers (the campaign
test across replicas, bench/campaign_pace.py): callbacks signed for the public URL and delivered to a replica
still alive, and each call left ringing a while, then unanswered."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.fakes.twilio_outbound import FakeTwilioCalls


class ToReplica(httpx.AsyncBaseTransport):
    """Twilio's callbacks, signed for PHONE_PUBLIC_URL, sent to `base_url` (a replica's own address)."""

    def __init__(self, base_url: str) -> None:
        self._base = httpx.URL(base_url)
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme=self._base.scheme, host=self._base.host, port=self._base.port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def unanswered_after(twilio: FakeTwilioCalls, ring_seconds: float) -> None:
    """Each call placed rings `ring_seconds` from its create, then ends `no-answer`; until cancelled."""
    finished: set[str] = set()
    while True:
        for n, call in enumerate(list(twilio.placed)):
            if call.sid not in finished and time.monotonic() >= twilio.created_at[n] + ring_seconds:
                finished.add(call.sid)
                answers = await twilio.finish(call.sid, "no-answer")
                assert all(a.status_code == 204 for a in answers), [a.text for a in answers]
        await asyncio.sleep(0.05)


def closest_to_pace(created_at: list[float], per_second: float) -> float:
    """The least, over every pair of creates, of their time apart less what the pace asks for them
    (`(j - i) / per_second`): negative when some creates came faster than the pace."""
    times = sorted(created_at)
    return min((times[j] - times[i] - (j - i) / per_second for i in range(len(times))
                for j in range(i + 1, len(times))), default=0.0)
