"""A Fly Machine's API socket (`/.fly/api`) for one machine of the fake Fly: HTTP over a Unix socket.

On Fly the socket is inside the Machine and its proxy attaches that Machine's own credential, so
whatever asks through it is that Machine. Here each machine gets a socket file of its own, which a
test hands only to that machine's bot (`BOT_FLY_API_SOCKET`). It answers `POST /v1/tokens/oidc`
(`{"aud": …}`) with the raw token, as the Machines API documents
(https://fly.io/docs/machines/api/tokens-resource/), and 404 for anything else.
"""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class MachineSocket:
    def __init__(self, path: str, mint: Callable[[str], tuple[int, str]]) -> None:
        """`mint(audience)` → (status, body): what the Machines API answers this machine."""

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = min(int(self.headers.get("Content-Length") or 0), 64 * 1024)
                try:
                    body: Any = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = None
                if self.path != "/v1/tokens/oidc":
                    status, text = 404, "not found"
                elif not isinstance(body, dict):
                    status, text = 400, "invalid json"
                else:
                    status, text = mint(str(body.get("aud") or ""))
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
                pass

        self.path = path
        self._server = _Server(path, Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
