"""Finding: where bots may ptrace one another (no Landlock, no Yama), a hostile bot borrowed a young
sibling's launch socket with `pidfd_getfd`, wrote its own nonce through it and dialled first as the
sibling: the dispatcher kept any nonce that arrived on the socket, whoever wrote it.

Two real processes beside the dispatcher's own launch proof: the launched bot (bot/identity.py's
sending side, on the end it inherited) and a hostile process that borrows that end with
`pidfd_getfd` and writes a nonce of its own. The borrowed nonce is refused; the launched bot's own
is admitted (the control)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from dispatcher.machines.local.launch_proof import LaunchSocket

LAUNCHED = textwrap.dedent("""
    import os, sys
    from bot.identity import LaunchSocket
    end = LaunchSocket(os.environ)
    for _ in sys.stdin:
        print(end.proof(), flush=True)
""")
BORROWER = textwrap.dedent("""
    import ctypes, os, secrets, sys
    SYS_pidfd_getfd = 438  # x86_64 and arm64 (pidfd_getfd(2))
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(int(sys.argv[1]))
    fd = libc.syscall(SYS_pidfd_getfd, pidfd, int(sys.argv[2]), 0)
    if fd < 0:
        sys.exit(f"pidfd_getfd: {os.strerror(ctypes.get_errno())}")
    nonce = secrets.token_urlsafe(32)
    os.write(fd, nonce.encode() + b"\\n")
    print(nonce, flush=True)
""")


@pytest.fixture
def launched() -> Iterator[tuple[LaunchSocket, subprocess.Popen[str], str]]:
    launch = LaunchSocket()
    env = {**os.environ, **launch.environment()}
    process = subprocess.Popen([sys.executable, "-c", LAUNCHED], env=env, text=True, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, pass_fds=(launch.child.fileno(),))
    launch.handed_over()
    launch.launched(process.pid)
    try:
        yield launch, process, env["BOT_IDENTITY_FD"]  # the descriptor's number in the bot
    finally:
        process.kill()
        process.wait(timeout=10)
        launch.close()


def proof_of(process: subprocess.Popen[str]) -> str:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("dial\n")
    process.stdin.flush()
    return process.stdout.readline().strip()


def test_a_nonce_written_through_a_borrowed_launch_socket_is_refused(
    launched: tuple[LaunchSocket, subprocess.Popen[str], str],
) -> None:
    launch, process, fd = launched
    own = proof_of(process)  # the bot is running and has used its end
    borrower = subprocess.run([sys.executable, "-c", BORROWER, str(process.pid), fd],
                              capture_output=True, text=True, timeout=30)
    if borrower.returncode != 0:
        pytest.skip(f"this kernel refuses pidfd_getfd here, so nothing can borrow the end: {borrower.stderr}")
    borrowed = borrower.stdout.strip()
    assert len(borrowed) == 43
    assert not launch.spend(borrowed), "a nonce another process wrote through the bot's end was kept"
    assert launch.spend(own)  # control: the launched bot's own nonce, written before the borrower's
    assert launch.spend(proof_of(process))  # and after it
