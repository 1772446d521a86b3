"""The tests' HTTP client of a server on loopback (a dispatcher, a fake platform API).

httpx keeps an idle connection 5 s, and the servers (uvicorn, the dispatcher's own) close one idle
for 5 s, timed from when they sent the response, a little before the client had it: a request sent on
a connection just past its server's 5 s fails with "Server disconnected without sending a response",
which a loaded machine makes likely (a caller on the line for 7 s between two requests). Idle
connections are dropped at 2 s here, as `voicefleet loadtest` does (src/voicefleet/loadtest/run.py).
"""

from __future__ import annotations

from typing import Any

import httpx

KEEPALIVE_SECONDS = 2.0


def api_client(**options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(limits=httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS), **options)
