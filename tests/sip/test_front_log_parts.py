"""The parts that carry Kamailio's log to the edge's own (sipedge/stream_lines.py, sipedge/log_relay.py,
sipedge/supervisor.py): whatever a line's length it is read past, cut short; the edge's output is written
off its event loop, at most so many bytes a second; and a Kamailio whose log is no longer read is stopped,
so that it is started again rather than left blocked on its next log write."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import threading
import time
from pathlib import Path

import pytest

from sipedge import supervisor as supervised
from sipedge.log_relay import QUEUED_LINES, LogRelay
from sipedge.stream_lines import lines
from sipedge.supervisor import Child, Supervisor
from tests.sip.test_front_parts import edge

WAIT_SECONDS = 10.0


def _read(*pieces: bytes, most: int = 16) -> list[bytes]:
    async def read() -> list[bytes]:
        stream = asyncio.StreamReader()
        for piece in pieces:
            stream.feed_data(piece)
        stream.feed_eof()
        return [line async for line in lines(stream, most)]

    return asyncio.run(read())


def test_a_line_over_the_limit_is_cut_short_and_the_next_read_whole() -> None:
    assert _read(b"x" * 100_000 + b"\nnext\n") == [b"x" * 16 + b" [cut: 99984 bytes more]\n", b"next\n"]


def test_lines_split_across_reads_are_joined_and_the_last_ends_with_a_newline() -> None:
    assert _read(b"ab", b"c\nde", b"f\n\ng") == [b"abc\n", b"def\n", b"\n", b"g\n"]


class _Output(io.BytesIO):
    """The edge's output, whose writes wait while `held` is clear (a stalled terminal or pipe)."""

    def __init__(self) -> None:
        super().__init__()
        self.held = threading.Event()
        self.held.set()
        self.entered = threading.Event()  # a write began (and waits while `held` is clear)

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.entered.set()
        self.held.wait()
        return super().write(data)


def _eventually(check: object) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.05)


def test_lines_over_a_seconds_budget_are_left_out_and_said_so() -> None:
    out = _Output()
    relay = LogRelay(lambda: out, "kamailio", bytes_per_second=100, clock=lambda: 7.0)  # one second, always
    for index in range(10):
        relay.put(f"line {index:02d} of twenty bytes\n".encode()[:20])
    said = b"kamailio: 5 lines (100 bytes) of its log left out: over 100 bytes a second, or our output stalled\n"
    _eventually(lambda: said in out.getvalue())
    assert out.getvalue() == b"".join(f"line {index:02d} of twenty bytes\n".encode()[:20]
                                      for index in range(5)) + said


def test_a_stalled_output_never_holds_the_caller_up() -> None:
    out = _Output()
    out.held.clear()
    relay = LogRelay(lambda: out, "kamailio", bytes_per_second=10**9)
    done = threading.Event()

    def put_many() -> None:
        for _ in range(QUEUED_LINES * 3):
            relay.put(b"x\n")
        done.set()

    threading.Thread(target=put_many, daemon=True).start()
    assert done.wait(WAIT_SECONDS)  # a put that waited on the output would never finish while it is held
    out.held.set()
    _eventually(lambda: b"of its log left out" in out.getvalue())
    assert b"of its log left out" in out.getvalue()


def test_lines_a_stalled_output_keeps_back_at_the_stop_are_said_left_out() -> None:
    out = _Output()
    out.held.clear()
    relay = LogRelay(lambda: out, "kamailio", bytes_per_second=10**9)
    for index in range(10):
        relay.put(f"line {index}\n".encode())
    assert out.entered.wait(WAIT_SECONDS)  # the writer took the first line: a busy machine may start it late
    relay.close(seconds=0.2)  # the writer is held in its first line's write past the bound
    relay.put(b"after the stop\n")
    out.held.set()
    _eventually(lambda: b"left out" in out.getvalue())
    written = out.getvalue().count(b"line ")
    said = re.findall(rb"^kamailio: (\d+) lines", out.getvalue(), re.MULTILINE)
    assert said and written + int(said[0]) == 11, out.getvalue()  # the line put after the stop is counted too


class _SlowOutput(io.BytesIO):
    """The edge's output, slower than the lines put (a terminal or log shipper behind a flood)."""

    def write(self, data: bytes) -> int:  # type: ignore[override]
        time.sleep(0.005)
        return super().write(data)


def test_lines_left_out_under_a_sustained_flood_are_said_so_while_it_lasts() -> None:
    out = _SlowOutput()
    relay = LogRelay(lambda: out, "kamailio", bytes_per_second=10**9)  # left out only by the full queue
    flooding = threading.Event()
    flooding.set()

    def flood() -> None:  # never lets the queue run empty, until the test ends it
        deadline = time.monotonic() + 3 * WAIT_SECONDS
        while flooding.is_set() and time.monotonic() < deadline:
            relay.put(b"x\n")

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    try:
        _eventually(lambda: b"of its log left out" in out.getvalue())
        assert b"of its log left out" in out.getvalue()
        assert flooder.is_alive()
    finally:
        flooding.clear()
        flooder.join(WAIT_SECONDS)


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped by init, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


async def _ready(_: Child) -> None:
    return None


# Still running, with a child of its own (as Kamailio's main process has), or already exited.
@pytest.mark.parametrize(("argv", "stopped"), [(["sh", "-c", "sleep 60 & echo $!; wait"], True), (["true"], False)])
def test_a_kamailio_whose_log_is_no_longer_read_is_stopped_to_start_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, argv: list[str],
        stopped: bool) -> None:
    monkeypatch.setattr(supervised, "STOP_SECONDS", 1.0)
    supervisor = Supervisor(edge(tmp_path, "workers = 2"))

    async def run() -> int | None:
        child = Child("kamailio", argv, {"PATH": "/usr/bin:/bin"}, _ready, own_group=True)
        await child.start()
        assert child.process is not None and child.process.stdout is not None
        grandchild = (await child.process.stdout.readline()).strip()
        await supervisor._log_read_ended(child, child.process)  # its reader ended: it still runs, or it exited
        code = await asyncio.wait_for(child.process.wait(), WAIT_SECONDS)
        if grandchild:  # killed with its group: nothing of it is left holding what it held
            deadline = time.monotonic() + WAIT_SECONDS
            while Path(f"/proc/{int(grandchild)}").exists() and _alive(int(grandchild)) \
                    and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert not _alive(int(grandchild))
        return code

    with caplog.at_level(logging.ERROR, "sipedge"):
        code = asyncio.run(run())
    assert (code == -9) is stopped and (code == 0) is not stopped
    assert ("no longer read while it runs" in caplog.text) is stopped
