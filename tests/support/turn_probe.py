"""A TURN client probe, run inside a test namespace: `ip netns exec <ns> python -m tests.support.turn_probe`.

Reads one JSON object on stdin (credentials never go on a command line):
    {"server": ["192.0.2.10", 3478], "transport": "udp"|"tcp", "username": "...", "password": "...",
     "peers": ["198.51.100.2", "169.254.169.254", ...], "refresh_at": <epoch seconds, optional>}
and prints one JSON object: {"allocate": "ok" | <STUN error code>, "relayed": [host, port] | null,
"permissions": {peer: "ok" | <error code>}, "refresh": "ok" | <error code> | null, "username": ...}.
With `refresh_at` the allocation is refreshed once the wall clock has passed it (e.g. the credential's
expiry), so a test can show what an expired credential still does for an existing allocation.
Instead of a username and password, `"mint": {"secret": ..., "user": ..., "ttl_seconds": N}` has the
probe make a credential lasting N seconds just before it allocates, as the dispatcher would, and
`"refresh_after_expiry": S` refreshes S seconds past its expiry: a short TTL is not spent by this
process's own start-up on a busy machine.
An Allocate is answered 401 for a bad or expired credential; a CreatePermission 403 for a peer
the server refuses to relay to (RFC 8656 §9).
Every transaction is bounded by aioice's retransmissions and by an overall timeout.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from aioice import stun, turn

from dispatcher.media.turn import turn_password

OVERALL_TIMEOUT = 20.0


def minted(request: dict[str, Any]) -> dict[str, Any]:
    """The request with its credential made now, if it asks for one (see the module docstring)."""
    mint = request.get("mint")
    if mint is None:
        return request
    expiry = int(time.time()) + int(mint["ttl_seconds"])
    username = f"{expiry}:{mint['user']}"
    after = request.get("refresh_after_expiry")
    refresh_at = None if after is None else expiry + float(after)
    return {**request, "username": username, "password": turn_password(mint["secret"].encode(), username),
            "refresh_at": refresh_at}


async def probe(request: dict[str, Any]) -> dict[str, Any]:
    request = minted(request)
    server = (request["server"][0], int(request["server"][1]))
    loop = asyncio.get_running_loop()

    def protocol() -> turn.TurnClientMixin:
        cls = turn.TurnClientTcpProtocol if request.get("transport") == "tcp" else turn.TurnClientUdpProtocol
        return cls(server, request["username"], request["password"], lifetime=60, channel_refresh_time=50)

    if request.get("transport") == "tcp":
        transport, client = await loop.create_connection(protocol, host=server[0], port=server[1])
    else:
        transport, client = await loop.create_datagram_endpoint(protocol, remote_addr=server)
    result: dict[str, Any] = {"allocate": None, "relayed": None, "permissions": {}, "refresh": None,
                              "username": request["username"]}
    try:
        try:
            relayed = await client.connect()
        except stun.TransactionFailed as exc:
            result["allocate"] = exc.response.error_code
            return result
        result["allocate"], result["relayed"] = "ok", list(relayed)
        if client.refresh_task is not None:
            client.refresh_task.cancel()
        for peer in request.get("peers", []):
            message = stun.Message(message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST)
            message.attributes["XOR-PEER-ADDRESS"] = (peer, 9)
            try:
                await client.request_with_retry(message)
                result["permissions"][peer] = "ok"
            except stun.TransactionFailed as exc:
                result["permissions"][peer] = exc.response.error_code
        if request.get("refresh_at") is not None:
            await asyncio.sleep(max(0.0, float(request["refresh_at"]) - time.time()))
            refresh = stun.Message(message_method=stun.Method.REFRESH, message_class=stun.Class.REQUEST)
            refresh.attributes["LIFETIME"] = 60
            try:
                await client.request_with_retry(refresh)
                result["refresh"] = "ok"
            except stun.TransactionFailed as exc:
                result["refresh"] = exc.response.error_code
        return result
    finally:
        transport.close()


def main() -> int:
    request = json.loads(sys.stdin.read())
    result = asyncio.run(asyncio.wait_for(probe(request), OVERALL_TIMEOUT))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
