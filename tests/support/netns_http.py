"""One HTTP request made from inside a namespace: `ip netns exec <ns> python -m tests.support.netns_http`.

Reads {"method", "url", "json"} on stdin, prints {"status", "body"}. The relay test uses it to
carry a SmallWebRTC offer to a bot's loopback signalling port inside the bot's namespace, a
stand-in for the dispatcher + control channel path until that carries cloud signalling.
"""

from __future__ import annotations

import json
import sys

import httpx


def main() -> int:
    request = json.loads(sys.stdin.read())
    response = httpx.request(request["method"], request["url"], json=request.get("json"), timeout=20.0)
    try:
        body = response.json()
    except ValueError:
        body = response.text
    print(json.dumps({"status": response.status_code, "body": body}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
