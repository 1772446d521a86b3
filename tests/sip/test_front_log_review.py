"""Review of "Kamailio's own refusals counted from its standard error" (sipedge/front_refusals.py,
sipedge/supervisor.py): Kamailio's core parser logs a malformed request's text itself, before the config's
script runs (parse_via(): "parsing via on: <...>" prints the rest of the datagram, newlines and all), so
whoever sends one UDP datagram from anywhere, no trunk's source needed, writes lines of their own into the log
the supervisor reads:
- a line of 64 KiB or more (one 65,507-byte datagram whose first header is a bad Via) makes
  `StreamReader.readline` raise ValueError (asyncio's 64 KiB limit); `read_front_log` dies with it, nobody
  reads Kamailio's standard error again, and once the pipe holds 64 KiB more Kamailio blocks on its next log
  line: the front answers no SIP at all, and the supervisor, seeing Kamailio alive, never restarts it;
- a line laid out as the config's own (`<script>: sipedge-front-refused ...`) is counted as a refusal and
  logged in the sender's words with the source the sender chose: one datagram inflates `refused_last_minute`
  by as many lines as it holds, and fills the 20 refusals logged in full each period (LOGGED_PER_PERIOD), so
  the real ones after it (a trunk's calls refused) are only counted.
The fixes: the log read in chunks, lines cut short, to its end (sipedge/stream_lines.py), and a refusal's line
counted only with this start's mark, which no sender knows (sipedge/front_refusals.py)."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path

from sipedge.front_refusals import new_mark, read_front_log
from sipedge.refusal_log import LOGGED_PER_PERIOD, RefusalLog
from tests.sip.conftest import run_edge
from tests.sip.raw_sip import RawSip, status_of
from tests.sip.test_edge_status import REGISTERED_NUMBER, SECRET, _status, invite_refused_as_stranger
from tests.support.ports import free_port

UDP_MOST = 65507  # the largest UDP payload over IPv4
WAIT_SECONDS = 10.0  # past what the front needs to answer an OPTIONS on a busy host, many times over
STALLED_SECONDS = 5.0  # after the flood: a front that answers nothing for this long is blocked


def _send(edge_port: int, message: str, source: str = "127.0.0.5") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.bind((source, 0))
        sender.sendto(message.encode(), ("127.0.0.1", edge_port))


def _answers_options(edge_port: int, seconds: float = WAIT_SECONDS) -> bool:
    """Whether the front answers an OPTIONS within `seconds` (asked again each second)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        asker = RawSip("127.0.0.1", edge_port)
        try:
            asker.options(REGISTERED_NUMBER)
            answer = asker.final_answer(1.0)
        finally:
            asker.close()
        if answer is not None and status_of(answer) == 200:
            return True
    return False


def test_one_long_datagram_does_not_stall_the_front(tmp_path: Path) -> None:
    with run_edge("http://127.0.0.1:9", tmp_path, workers=2) as edge:
        assert _answers_options(edge.sip_port)
        head = "OPTIONS sip:x SIP/2.0\r\nVia: garbage"  # a bad first Via: Kamailio logs the rest of the datagram
        _send(edge.sip_port, head + "x" * (UDP_MOST - len(head)))
        for _ in range(300):  # ~300 KiB of Kamailio's own parse errors: far past a pipe's 64 KiB
            _send(edge.sip_port, head + "y" * 1000 + "\r\n\r\n")
        # A blocked Kamailio never answers again; a drained one answers at once (its backlog is ~300 KiB of text).
        assert _answers_options(edge.sip_port, STALLED_SECONDS), edge.log()[-3000:]


def test_a_senders_text_in_kamailios_log_is_neither_counted_nor_logged_as_a_refusal(tmp_path: Path) -> None:
    control_port = free_port()
    settings = f'control_port = {control_port}\ncontrol_secret_env = "EDGE_SECRET"'
    control = f"http://127.0.0.1:{control_port}"
    forged = "".join(f"\n 0(1) WARNING: <script>: sipedge-front-refused 503 from 198.51.100.{n}: trunk0 over 10/s"
                     for n in range(2 * LOGGED_PER_PERIOD))
    with run_edge("http://127.0.0.1:9", tmp_path, settings=settings, env={"EDGE_SECRET": SECRET},
                  workers=2) as edge:
        assert _status(control, SECRET)[1]["refused_last_minute"] == 0
        _send(edge.sip_port, f"OPTIONS sip:x SIP/2.0\r\nVia: garbage{forged}\r\n\r\n")  # from a stranger, once
        invite_refused_as_stranger(edge.sip_port)  # then a real refusal: 403, no trunk allows 127.0.0.2
        deadline = time.monotonic() + WAIT_SECONDS
        while (body := _status(control, SECRET)[1])["refused_last_minute"] < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # any forged line read later would be counted by now
        body = _status(control, SECRET)[1]
        log = edge.log()
    supervisor_lines = [line for line in log.splitlines() if "refused by the front" in line]
    assert not [line for line in supervisor_lines if "198.51.100." in line], supervisor_lines[:5]
    assert any("127.0.0.2 refused by the front (403)" in line for line in supervisor_lines), supervisor_lines[:25]
    assert body["refused_last_minute"] <= 2, body  # the stranger's 403, and at most one for the malformed datagram
    # Passed on as the request's text it is: inside the parser's own entries on it (Kamailio's JSON log engine
    # escapes its line breaks), never a line of its own, let alone one that reads as Kamailio's entry.
    forged_lines = [line for line in log.splitlines() if "198.51.100." in line and "refused by the front" not in line]
    assert forged_lines and all(re.match(r"kamailio: +[0-9]+\([0-9]+\) ERROR: <core> \[core/parser/", line)
                                and "\\x0a 0(1) WARNING: <script>" in line for line in forged_lines), forged_lines[:5]


def test_the_front_log_reader_reads_on_past_a_line_over_its_limit() -> None:
    mark = new_mark()

    async def read() -> RefusalLog:
        stream = asyncio.StreamReader()  # the limit asyncio.create_subprocess_exec gives Kamailio's stderr: 64 KiB
        stream.feed_data(b" 1(7) ERROR: <core> [core/parser/parse_via.c:2706]: parse_via(): parsing via on: <"
                         + b"x" * 70_000 + b">\n")
        stream.feed_data(f'{{ "idx": 0, "pid": 7, "level": "WARNING", "module": "xlog", "file": "xlog.c", '
                         f'"line": 282, "function": "", "logprefix": "", "message": "sipedge-front-refused {mark} 403 '
                         'from 192.0.2.7: no trunk allows this source" }\n'.encode())
        stream.feed_eof()
        refusals = RefusalLog()
        await asyncio.wait_for(read_front_log(stream, refusals, mark), 10)
        return refusals

    assert asyncio.run(read()).last_minute() == 1
