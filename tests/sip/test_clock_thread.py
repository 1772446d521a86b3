"""PJSIP's media clock calls the edge's port twice a tick from a thread Python did not start: its Python
thread state is made once and kept (sipedge/clock_thread.py), not made and destroyed around every callback;
and once PJSUA has ended that thread after an idle second, the state it kept is freed when the next clock
thread keeps its own (tests/sip/pjsip_clock_probe.py: a real PJSUA2 endpoint and its conference bridge).
Threads of libc's own, calling in as PJSIP's do (tests/sip/foreign_thread.py), for what PJSIP seldom does:
a thread still there as the next one holds its state, /proc that cannot tell, a fork."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from sipedge import clock_thread
from sipedge.clock_thread import keep_thread_state
from sipedge.stack import PJSUA_CALLS
from tests.sip.foreign_thread import ForeignThread, run_on_foreign_thread, thread_states
from tests.support.ports import free_port, free_port_pair

PROBE_SECONDS = 60


def probe() -> dict[str, Any]:
    run = subprocess.run([sys.executable, "-m", "tests.sip.pjsip_clock_probe", str(free_port(socket.SOCK_DGRAM)),
                          str(free_port_pair(2 * PJSUA_CALLS))],
                         capture_output=True, text=True, timeout=PROBE_SECONDS, check=False,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    probed: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return probed


def test_each_clock_thread_keeps_one_python_thread_state_and_an_ended_ones_is_freed() -> None:
    probed = probe()
    # Two ports of a second each: about 200 callbacks (fewer on a starved host, which delays the clock).
    assert probed["callbacks"] >= 20, probed
    assert probed["clock_threads"] == 2, probed  # the idle 2 s between the ports ended the first clock thread
    assert probed["new_states"] == 2, probed  # one state for each thread's life, not one per callback
    first, second = probed["thread_states"]
    assert second == first, probed  # the second clock thread's state held, the first one's freed


def test_a_thread_python_started_keeps_its_own_state_untouched() -> None:
    """A callback on a thread of Python's own (a test's, the SIP thread's) holds nothing: Python frees that
    thread's state itself as the thread ends, and a state held and freed again would be freed twice."""
    for _ in range(3):
        thread = threading.Thread(target=keep_thread_state)
        thread.start()
        thread.join()
    before = list(clock_thread._held_before)
    keep_thread_state()
    assert clock_thread._held_before == before


def held_in_callback(let_go: threading.Event) -> tuple[ForeignThread, int]:
    """A foreign thread that holds its state and stays in its callback until `let_go`; its state."""
    held = threading.Event()

    def work() -> None:
        keep_thread_state()
        held.set()
        let_go.wait(30)

    thread = ForeignThread(work)
    assert held.wait(30), "the foreign thread did not call"
    return thread, clock_thread._held_before[-1][0]


@pytest.fixture
def let_go() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def test_each_ended_threads_state_is_freed_by_the_next_one() -> None:
    run_on_foreign_thread(keep_thread_state)
    first = clock_thread._held_before[-1][0]
    run_on_foreign_thread(keep_thread_state)
    assert first not in thread_states()
    assert clock_thread._held_before[-1][0] in thread_states()


def test_a_state_whose_thread_still_runs_is_freed_by_a_later_thread(let_go: threading.Event) -> None:
    """As PJSUA joins its old clock thread, that thread may still be listed; or two threads call at once."""
    running, state = held_in_callback(let_go)
    run_on_foreign_thread(keep_thread_state)
    assert state in thread_states()  # still in use: not freed
    let_go.set()
    running.join()
    run_on_foreign_thread(keep_thread_state)
    assert state not in thread_states()  # not left over for good


def test_where_proc_cannot_tell_no_state_is_freed(monkeypatch: pytest.MonkeyPatch, let_go: threading.Event) -> None:
    running, state = held_in_callback(let_go)
    monkeypatch.setattr(clock_thread, "TASKS", "/nonexistent/task")  # /proc not mounted, or another PID namespace's
    run_on_foreign_thread(keep_thread_state)
    assert state in thread_states()
    let_go.set()
    running.join()  # its callback returns on its state, still whole
    monkeypatch.undo()
    run_on_foreign_thread(keep_thread_state)
    assert state not in thread_states()


def test_a_forked_child_forgets_the_states_cpython_freed_in_it() -> None:
    run_on_foreign_thread(keep_thread_state)
    assert clock_thread._held_before
    child = os.fork()
    if child == 0:  # CPython freed every other thread's state here: freeing them again would free them twice
        try:
            os._exit(0 if clock_thread._held_before == [] and clock_thread._freeing.acquire(timeout=5) else 1)
        finally:
            os._exit(1)
    assert os.waitpid(child, 0)[1] == 0
