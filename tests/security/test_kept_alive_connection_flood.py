"""Finding: a connection that had made one request was never closed to make room, so a flood of
MAX_CONNECTIONS kept-alive connections, each sending `GET /healthz` every few seconds (or a byte at
a time, a whole request now and then), kept `/healthz` and new bots' channel dials at 503 for as
long as it ran: about MAX_CONNECTIONS / (KEEP_ALIVE + HEADER_TIMEOUT) requests a second, with no
reconnects. And requests the app was working on (slow readers of a large answer, each held up to
the write deadline) could fill the whole cap.

Then: `POST` heads whose bodies never came counted as requests the app was working on, so a flood
of them (one reconnect per HEADER_TIMEOUT_SECONDS, no body byte) answered every other API request
503; and a flood of connects that send nothing closed, oldest first, an honest client's kept-alive
connection between its requests and uploads whose bodies were still coming.

Against `python -m dispatcher` with a live session (a real bot on its channel, a caller watching
its events): during each flood `/healthz` answers 200 and a bot channel dial reaches the channel
(403: the credential is a test's), and afterwards the session's event stream is still open and
its bot still answers over its channel (neither was closed to make room); but for slow readers,
which fill the API's share, an API request is answered too. During a flood of connects that send
nothing, a kept-alive client's every request is answered on its one connection, and each upload
under way when the flood began is answered once its body comes. Bounded: loopback sockets for a
few seconds each (a few dozen open at once)."""

from __future__ import annotations

import selectors
import shlex
import socket
import threading
import time
from collections.abc import Iterator
from http.client import HTTPConnection, HTTPException

import httpx
import pytest

from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_LOCAL_BOT_ENV
from tests.security.conftest import WAIT
from tests.security.test_idle_connection_flood import channel_dial
from tests.support.processes import DispatcherProcess, run_dispatcher

MAX_CONNECTIONS = 32
FLOOD_SECONDS = 5.0
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
ASSET = b"GET /docs-assets/swagger-ui-bundle.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"  # 1.7 MB, no key
SMALL_ASSET = "/docs-assets/swagger-ui.css"  # an API request like any other, served without a key
OWED = b"POST /start HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n"
# Its body, b"{}", comes later; any answer will do. `Expect: 100-continue` has the server say when the
# app awaits the body: the head parsed, the upload under way (not a connection yet to send a request).
UPLOAD = (b"POST /sessions/none/api/offer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
          b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n")
ENV = {**STANDIN_LOCAL_BOT_ENV, "LOCAL_BOT_COMMAND": shlex.join(STANDIN_BOT), "STANDIN_MODE": "serve",
       "RESERVE_MAX_IDLE": "0", "MAX_CONNECTIONS": str(MAX_CONNECTIONS), "KEEP_ALIVE_SECONDS": "5",
       "HEADER_TIMEOUT_SECONDS": "10", "WRITE_TIMEOUT_SECONDS": "30"}


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    """One dispatcher for every flood: each test starts its own session and closes all it opened, and
    each checks its control (no flood) first, so a flood that left the dispatcher worse fails there."""
    with run_dispatcher(tmp_path_factory.mktemp("flood"), ENV) as running:
        yield running


def port_of(dispatcher: DispatcherProcess) -> int:
    return int(dispatcher.base_url.rsplit(":", 1)[1])


def status(dispatcher: DispatcherProcess, path: str) -> int | str:
    try:
        return httpx.get(dispatcher.base_url + path, timeout=10).status_code
    except httpx.HTTPError as exc:
        return repr(exc)


def answers(dispatcher: DispatcherProcess) -> tuple[int | str, str]:
    try:
        dial = channel_dial(port_of(dispatcher))
    except OSError as exc:
        dial = repr(exc)
    return status(dispatcher, "/healthz"), dial


def watching(dispatcher: DispatcherProcess, session_id: str) -> socket.socket:
    """A caller's event stream of the session, its head read: an honest wait the cap must keep."""
    sock = socket.create_connection(("127.0.0.1", port_of(dispatcher)), timeout=WAIT)
    sock.sendall(f"GET /sessions/{session_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    assert sock.recv(4096).startswith(b"HTTP/1.1 200"), "the event stream did not open"
    return sock


def still_open(sock: socket.socket) -> bool:
    sock.settimeout(0.5)
    try:
        return sock.recv(65536) != b""  # a keep-alive comment or a status event
    except TimeoutError:
        return True  # quiet, and open
    except OSError:
        return False


class Flood:
    """MAX_CONNECTIONS connections, each replaced when the dispatcher closes it (bounded by time)."""

    def __init__(self, port: int, shape: str) -> None:
        self.port, self.shape = port, shape
        self.selector = selectors.DefaultSelector()
        self.sent: dict[socket.socket, tuple[float, int]] = {}  # when the last whole request went, bytes of the next

    def open_one(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        if self.shape == "slow reader":  # a reader that takes nothing: its answer stalls in the dispatcher
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(ASSET * 6)
        elif self.shape == "body owed":  # a head whose body never comes: the app waits for it
            sock.sendall(OWED)
            self.selector.register(sock, selectors.EVENT_READ)
        else:
            sock.sendall(REQUEST)
            self.selector.register(sock, selectors.EVENT_READ)
        self.sent[sock] = (time.monotonic(), 0)

    def drop(self, sock: socket.socket) -> None:
        if self.shape != "slow reader":
            self.selector.unregister(sock)
        sock.close()
        del self.sent[sock]

    def step(self) -> None:
        """Read what came, send the next request (or byte), and top the flood back up."""
        for key, _ in self.selector.select(timeout=0.05):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data or data.startswith(b"HTTP/1.1 503"):
                self.drop(sock)
        now = time.monotonic()
        for sock, (at, trickled) in list(self.sent.items()):
            try:
                if self.shape == "kept alive" and now - at >= 1.0:  # a whole request every second
                    sock.sendall(REQUEST)
                    self.sent[sock] = (now, 0)
                elif self.shape == "trickle" and now - at >= 2.0:  # the rest of its head, every 2 s
                    sock.sendall(REQUEST[trickled:])
                    self.sent[sock] = (now, 0)
                elif self.shape == "trickle" and now - at >= 0.4 * (trickled + 1) and trickled < 4:
                    sock.sendall(REQUEST[trickled:trickled + 1])  # a byte at a time in between
                    self.sent[sock] = (at, trickled + 1)
            except OSError:
                self.drop(sock)
        while len(self.sent) < MAX_CONNECTIONS:
            self.open_one()

    def close(self) -> None:
        for sock in list(self.sent):
            self.drop(sock)
        self.selector.close()


@pytest.mark.parametrize("shape", ["kept alive", "trickle", "slow reader", "body owed"])
def test_a_flood_of_requests_at_the_cap_keeps_neither_healthz_nor_bot_channels_out(
    dispatcher: DispatcherProcess, shape: str,
) -> None:
    started = httpx.post(f"{dispatcher.base_url}/start?wait=started", json={}, timeout=WAIT)
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    events = watching(dispatcher, session_id)
    assert answers(dispatcher) == (200, "HTTP/1.1 403 Forbidden")  # control: no flood
    flood = Flood(port_of(dispatcher), shape)
    seen: list[tuple[int | str, str]] = []
    api: list[int | str] = []
    try:
        flood.step()
        deadline = checked = time.monotonic()
        deadline += FLOOD_SECONDS
        while time.monotonic() < deadline:
            flood.step()
            if time.monotonic() - checked >= 0.5:
                seen.append(answers(dispatcher))
                api.append(status(dispatcher, SMALL_ASSET))
                checked = time.monotonic()
        assert len(flood.sent) == MAX_CONNECTIONS  # the flood was there all along
    finally:
        flood.close()
    assert seen and all(one == (200, "HTTP/1.1 403 Forbidden") for one in seen), seen
    if shape != "slow reader":  # those are whole requests the app works on: they may fill its share
        assert all(one == 200 for one in api), api
    assert still_open(events), "the session's event stream was closed to make room"
    events.close()
    offer = {"sdp": "v=0-flood", "type": "offer"}  # the bot's channel was kept: it still answers
    answer = httpx.post(f"{dispatcher.base_url}/sessions/{session_id}/api/offer", json=offer, timeout=WAIT)
    assert answer.status_code == 200 and answer.json()["sdp"] == "answer-to:v=0-flood", answer.text


def connect_flood(port: int, stop: threading.Event) -> None:
    """Connects that send nothing, a few hundred a second (each past the cap makes the dispatcher close
    one to make room; as many as one thread could open only starved the client's requests beside them
    on a loaded machine), at most 2 × MAX_CONNECTIONS open at once, until `stop`."""
    held: list[socket.socket] = []
    while not stop.is_set():
        try:
            held.append(socket.create_connection(("127.0.0.1", port), timeout=10))
            time.sleep(0.005)
        except OSError:
            time.sleep(0.01)
        if len(held) > 2 * MAX_CONNECTIONS:
            for sock in held[:MAX_CONNECTIONS]:
                sock.close()
            del held[:MAX_CONNECTIONS]
    for sock in held:
        sock.close()


def asked(client: HTTPConnection) -> int | str:
    """The status of a request on the client's own connection (an error if it was closed)."""
    try:
        client.request("GET", SMALL_ASSET)
        answer = client.getresponse()
        answer.read()
        return answer.status
    except (OSError, HTTPException) as exc:
        return repr(exc)
    finally:
        client.auto_open = 0  # never a new connection in its place


def test_a_flood_of_connects_closes_neither_a_kept_alive_client_nor_an_upload_under_way(
    dispatcher: DispatcherProcess,
) -> None:
    port = port_of(dispatcher)
    # A safety net, not the thing tested: what is tested is that the connection is never closed to
    # make room. Beside the flood thread on a loaded two-core machine an answer can take seconds.
    client = HTTPConnection("127.0.0.1", port, timeout=WAIT)
    assert asked(client) == 200  # control, and its connection kept for the next
    uploads = [socket.create_connection(("127.0.0.1", port), timeout=WAIT) for _ in range(4)]
    for sock in uploads:
        sock.sendall(UPLOAD)
    for sock in uploads:  # under way before the flood: the head read, the body still to come
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue"), "the upload's head was not read"
    stop = threading.Event()
    flood = threading.Thread(target=connect_flood, args=(port, stop))
    flood.start()
    statuses: list[int | str] = []
    bodies: list[bytes | str] = []
    started = time.monotonic()

    def send_bodies() -> None:
        """One body a second, on its own clock: each upload under way longer than the last, whatever
        the client's requests take beside the flood on a loaded machine."""
        for n, sock in enumerate(uploads):
            time.sleep(max(0.0, started + n + 0.5 - time.monotonic()))
            try:
                sock.sendall(b"{}")
                bodies.append(sock.recv(4096).split(b"\r\n")[0])
            except OSError as exc:
                bodies.append(repr(exc))

    uploader = threading.Thread(target=send_bodies)
    uploader.start()
    try:
        while time.monotonic() - started < FLOOD_SECONDS or uploader.is_alive():
            time.sleep(0.3)  # idle between requests, as a pooling client or a load balancer is
            statuses.append(asked(client))
    finally:
        uploader.join()
        stop.set()
        flood.join()
        client.close()
        for sock in uploads:
            sock.close()
    assert statuses and all(one == 200 for one in statuses), statuses
    assert len(bodies) == len(uploads) and all(isinstance(one, bytes) and one.startswith(b"HTTP/1.1 ")
                                                for one in bodies), bodies
