"""The edge's Kamailio front alone, on the kamailio.cfg the edge writes, with stand-in workers: UDP
sockets on the workers' ports that answer Kamailio's OPTIONS probes and keep every other request.
What the front lets through, refuses or relays is then seen without PJSIP in the way (the workers'
own behaviour has its tests in test_workers.py)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sipedge.config import EdgeConfig, load
from sipedge.front_config import write_front
from sipedge.supervisor import KAMAILIO, _answers_options, front_env
from sipedge.worker_place import new_token
from tests.support.ports import free_port
from tests.support.processes import terminate

FRONT_HOST = "127.0.0.1"
TRUNK = "127.0.0.20"  # the only source the trunk allows
STRANGER = "127.0.0.99"
NUMBER = "+14155550199"
READY_SECONDS = 30.0
ANSWER_HEADERS = ("via", "from", "to", "call-id", "cseq")

EDGE = """
dispatcher_url = "http://127.0.0.1:9"
sip_address = "{host}"
sip_port = {port}
rtp_port = 41000
rtp_port_count = 40
workers = {workers}
worker_sip_port = {worker_port}
{settings}
[[trunk]]
name = "carrier"
sources = ["{sources}"]
numbers = {{ "{number}" = "" }}
{trunk_settings}
"""


@dataclass
class StandInWorker:
    sock: socket.socket
    received: list[str] = field(default_factory=list)
    # What it answers an INVITE: each a status line's code and reason, then header lines; none: it keeps it.
    answers: tuple[str, ...] = ()
    # An INVITE holding this text is kept unanswered whatever `answers` says, as PJSIP drops a request it cannot
    # parse without a word (a Content-Type without a subtype).
    drops: str | None = None
    senders: list[str] = field(default_factory=list)  # each received request's source, "host:port"
    replies: list[str] = field(default_factory=list)  # each reply the front sent it (to a request it sent)

    def serve(self) -> None:
        while True:
            try:
                data, source = self.sock.recvfrom(65535)
            except OSError:
                return
            text = data.decode(errors="replace")
            if text.startswith("OPTIONS"):
                head = text.split("\r\n\r\n", 1)[0].split("\r\n")
                keep = [line for line in head[1:] if line.split(":", 1)[0].lower() in ANSWER_HEADERS]
                self.sock.sendto(("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n").encode(),
                                 source)
            elif text.startswith("SIP/2.0"):
                self.replies.append(text)
            else:
                self.senders.append(f"{source[0]}:{source[1]}")
                self.received.append(text)
                if text.startswith("INVITE ") and (self.drops is None or self.drops not in text):
                    for answer in self.answers:
                        self.sock.sendto(_answer(text, answer).encode(), source)
                        if answer.startswith("1"):
                            # A worker rings, then asks the dispatcher: a ringing and a refusal sent at once
                            # could be read by the front's two receiving processes in either order.
                            time.sleep(RING_SECONDS)


def _answer(request: str, answer: str) -> str:
    """`answer` ("503 Service Unavailable\r\nRetry-After: 5") to `request`, as a worker's PJSIP sends it."""
    head = request.split("\r\n\r\n", 1)[0].split("\r\n")
    keep = [line + (";tag=worker" if line.lower().startswith("to:") else "") for line in head[1:]
            if line.split(":", 1)[0].lower() in ANSWER_HEADERS]
    return f"SIP/2.0 {answer}\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n"


RING_SECONDS = 0.3


@dataclass
class Front:
    config: EdgeConfig
    workers: list[StandInWorker]
    log_path: Path
    token: str  # what the front writes on its requests to the workers
    call_token: str = ""  # what a worker's own INVITE carries to the front
    drain_token: str = ""  # what the supervisor's word of the drain carries (sipedge/front_drain.py)

    @property
    def address(self) -> tuple[str, int]:
        return (self.config.sip_address, self.config.sip_port)

    def at_workers(self) -> list[str]:
        return [text for worker in self.workers for text in worker.received]


def _worker_sockets(count: int) -> tuple[int, list[socket.socket]]:
    """`count` UDP sockets on consecutive loopback ports (the front's workers' list is a range)."""
    for _ in range(50):
        first = free_port(socket.SOCK_DGRAM)
        sockets: list[socket.socket] = []
        try:
            for index in range(count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", first + index))
            return first, sockets
        except OSError:
            for sock in sockets:
                sock.close()
    raise OSError(f"no {count} consecutive free UDP ports on loopback")


@contextlib.contextmanager
def running_front(folder: Path, settings: str = "", trunk_settings: str = "",
                  env: Mapping[str, str] | None = None, sources: str = f"{TRUNK}/32",
                  workers: int = 2) -> Iterator[Front]:
    """The front on `folder`'s edge.toml, with `settings` (lines of the edge's own, such as tls_port's) and
    `trunk_settings` (the trunk's) added, its variables read from `env` and passed on as the edge does; the
    trunk's `sources` a CIDR; `workers` stand-in workers."""
    first, sockets = _worker_sockets(workers)
    path = folder / "edge.toml"
    path.write_text(EDGE.format(host=FRONT_HOST, port=free_port(socket.SOCK_DGRAM), worker_port=first,
                                sources=sources, number=NUMBER, settings=settings, workers=workers,
                                trunk_settings=trunk_settings))
    variables = {"PATH": "/usr/bin:/bin", **(env or {})}
    config = load({**variables, "SIP_EDGE_CONFIG": str(path)})
    stand_ins = [StandInWorker(sock) for sock in sockets]
    for worker in stand_ins:
        threading.Thread(target=worker.serve, daemon=True).start()
    token, call_token, drain_token = new_token(), new_token(), new_token()
    files = write_front(config, folder, 3, token, call_token=call_token, drain_token=drain_token)
    log_path = folder / "kamailio.log"
    with log_path.open("wb") as log:
        argv = [KAMAILIO, "-f", str(files.config), "-DD", "-E", "-Y", str(folder), "-w", str(folder)]
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=front_env(variables, config))
    try:
        deadline = time.monotonic() + READY_SECONDS
        while not _answers_options(config.sip_address, config.sip_port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("Kamailio did not start:\n" + log_path.read_text(errors="replace"))
        yield Front(config, stand_ins, log_path, token, call_token, drain_token)
    finally:
        terminate(process)
        for sock in sockets:
            sock.close()


class Peer:
    """A SIP peer on its own loopback address: sends raw requests to the front and reads its answers."""

    def __init__(self, host: str, front: Front) -> None:
        self.host, self.front = host, front
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self._branch = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, method: str, uri: str, *, call_id: str, to_tag: str | None = None, extra: tuple[str, ...] = (),
             body: str = "", eol: str = "\r\n", cseq: int = 1, same_branch: bool = False) -> None:
        """`same_branch`: the last request's branch (a non-2xx ACK's, which is its INVITE's)."""
        self._branch += 0 if same_branch else 1
        to = f"<sip:{NUMBER}@{self.front.config.sip_address}>" + (f";tag={to_tag}" if to_tag else "")
        branch = f"z9hG4bK{call_id}{self._branch}"
        lines = [f"{method} {uri} SIP/2.0", f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={branch}",
                 "Max-Forwards: 70", f"From: <sip:+14155550100@{self.host}>;tag=caller", f"To: {to}",
                 f"Call-ID: {call_id}", f"CSeq: {cseq} {method}", f"Contact: <sip:caller@{self.host}:{self.port}>",
                 *extra, f"Content-Length: {len(body.encode())}"]
        self.sock.sendto((eol.join(lines) + eol + eol + body).encode(), self.front.address)

    def answers(self, seconds: float = 1.0) -> list[str]:
        """The status lines of what came back within `seconds`."""
        return [message.split("\r\n", 1)[0] for message in self.messages(seconds)]

    def messages(self, seconds: float = 1.0) -> list[str]:
        """What came back within `seconds`, whole."""
        found: list[str] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                found.append(self.sock.recv(65535).decode(errors="replace"))
            except OSError:
                break
        return found


def wait_for(check: object, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(check) and check():
            return True
        time.sleep(0.05)
    return False
