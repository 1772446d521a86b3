"""A test's dispatcher process is up when it answers on its port itself: another server that took
the port first (a port chosen free is free only when chosen) answered /healthz for a dispatcher
that had failed to bind, and the test then talked to a stranger (401 for every key). A port it chose
itself and found taken is chosen again (CI saw a chosen port taken before a busy host's bind)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.support import processes
from tests.support.ports import free_port
from tests.support.processes import run_dispatcher


class AnswersEverything(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def stranger() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), AnswersEverything)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_port_another_server_holds_is_no_dispatcher_up(tmp_path: Path) -> None:
    with stranger() as port, pytest.raises(RuntimeError, match="did not come up"), run_dispatcher(tmp_path, port=port):
        pass
    assert "address already in use" in (tmp_path / "dispatcher.log").read_text().lower()


def test_a_port_it_chose_taken_before_its_bind_is_chosen_again(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    with stranger() as taken:
        picks = iter([taken, free_port()])
        monkeypatch.setattr(processes, "free_port", lambda: next(picks))
        with run_dispatcher(tmp_path) as dispatcher:
            assert not dispatcher.base_url.endswith(f":{taken}")
            assert httpx.get(f"{dispatcher.base_url}/healthz", timeout=10).status_code == 200
