"""A worker's control API as a process of its own, which a test can freeze (SIGSTOP: its kernel still
accepts connections, nothing answers): `python -m tests.sip.control_stand_in PORT SECRET HELD`. It
takes every call (202, printing `took SESSION`), and holds the answered call of session HELD alone
(a transfer of it: 200 referred; of any other: 404 no_call), as sipedge/control.py answers. Its status:
one call in progress of its STATUS_CALLS slots, as sipedge/edge_status.py shapes a worker's."""

from __future__ import annotations

import sys

from aiohttp import web

from sipedge.control_auth import control_app

TOOK = "took "
STATUS_CALLS = 3


def main(port: int, secret: str, held: str) -> None:
    async def trunks(request: web.Request) -> web.Response:
        return web.json_response({"trunks": [], "stream_path": True})

    async def calls(request: web.Request) -> web.Response:
        session_id = (await request.json())["session_id"]
        print(f"{TOOK}{session_id}", flush=True)
        return web.json_response({"session_id": session_id}, status=202)

    async def transfer(request: web.Request) -> web.Response:
        session_id = request.match_info["session_id"]
        if session_id != held:
            return web.json_response({"error": {"code": "no_call"}}, status=404)
        return web.json_response({"session_id": session_id, "how": "referred", "to": "+1", "sip_status": 202})

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"up_since": 1795624000.0, "version": "sipedge-stand-in", "ready": True,
                                  "calls": {"in_progress": 1, "free": STATUS_CALLS - 1, "total": STATUS_CALLS},
                                  "trunks": [], "refused_last_minute": 2})

    web.run_app(control_app(secret, trunks, calls, transfer, status), host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
