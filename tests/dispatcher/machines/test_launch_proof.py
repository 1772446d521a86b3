"""A local bot's launch proof, in this process (the end-to-end tests run the dispatcher as its own
process, where no trace reaches): a nonce counts only when it came through the launch socket of the
process launched for the hello's credential, once, and every descriptor of a pair is closed when
its bot is forgotten."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator

import pytest

from botchannel.contract import IDENTITY_FD_VARIABLE, IDENTITY_VARIABLE, Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.local.launch_proof import LaunchedProcesses, LaunchSocket

GRANT = BotGrant("idle", "rsv-1", expires=0)


def nonce() -> str:
    return secrets.token_urlsafe(32)  # what bot/identity.py writes


def hello(identity: str | None) -> Hello:
    return Hello("rsv-1", identity=identity)


def closed(pair: LaunchSocket) -> bool:
    """Both ends' descriptors closed (a socket's fileno is -1 once closed). Counting /proc/self/fd
    instead would race any thread of the test run that opens a file meanwhile."""
    return pair.child.fileno() == -1 and pair._ours.fileno() == -1


@pytest.fixture
def processes() -> Iterator[LaunchedProcesses]:
    launched = LaunchedProcesses()
    yield launched
    launched.close()


def as_launched(pair: LaunchSocket) -> LaunchSocket:
    """This test process plays the launched bot: the kernel attests its pid on each write."""
    pair.launched(os.getpid())
    return pair


def test_a_nonce_written_through_the_launch_socket_is_admitted_once() -> None:
    pair = as_launched(LaunchSocket())
    proof = nonce()
    pair.child.sendall(proof.encode() + b"\n")
    assert pair.spend(proof) is True
    assert pair.spend(proof) is False  # spent
    pair.close()


def test_a_nonce_that_never_came_through_the_socket_is_refused_without_waiting() -> None:
    pair = LaunchSocket()
    pair.child.sendall(nonce().encode() + b"\n")
    assert pair.spend(nonce()) is False  # another nonce; nothing more to read must not block
    pair.close()


def test_a_nonce_written_before_the_launched_process_is_known_is_refused() -> None:
    pair, proof = LaunchSocket(), nonce()  # no pid named: no writer is the launched bot yet
    pair.child.sendall(proof.encode() + b"\n")
    assert pair.spend(proof) is False
    pair.close()


def test_a_nonce_written_by_another_process_than_the_launched_one_is_refused() -> None:
    pair, proof = LaunchSocket(), nonce()
    launched = subprocess.Popen(["sleep", "30"])  # the launched bot: this test process is its parent,
    try:  # neither it nor one of its descendants, so its writes are not the bot's
        pair.launched(launched.pid)
        pair.child.sendall(proof.encode() + b"\n")
        assert pair.spend(proof) is False
    finally:
        launched.kill()
        launched.wait()
        pair.close()


def test_a_nonce_written_in_pieces_is_admitted() -> None:
    pair, proof = as_launched(LaunchSocket()), nonce()
    pair.child.sendall(proof[:20].encode())
    assert pair.spend(proof) is False  # not whole yet
    pair.child.sendall(proof[20:].encode() + b"\n")
    assert pair.spend(proof) is True
    pair.close()


def test_junk_glued_to_a_nonce_does_not_make_it_a_proof() -> None:
    pair, proof = LaunchSocket(), nonce()
    pair.child.sendall(b"x" * 5000 + proof.encode() + b"\n")  # one line, longer than a nonce
    assert pair.spend(proof) is False
    pair.close()


def test_the_bot_cannot_read_anything_back_through_its_end() -> None:
    pair = LaunchSocket()
    pair.child.settimeout(2.0)
    assert pair.child.recv(64) == b""  # the dispatcher's end writes nothing: end of stream at once
    pair.close()


def test_the_bots_environment_names_its_descriptor_and_the_local_proof() -> None:
    pair = LaunchSocket()
    assert pair.environment() == {IDENTITY_VARIABLE: "local", IDENTITY_FD_VARIABLE: str(pair.child.fileno())}
    pair.close()


def test_a_closed_pair_leaves_no_descriptor_open() -> None:
    pair = LaunchSocket()
    assert not closed(pair)
    pair.close()
    assert closed(pair)


async def test_a_hello_with_the_launched_processs_nonce_is_admitted(processes: LaunchedProcesses) -> None:
    pair, proof = as_launched(processes.launching("idle", "rsv-1")), nonce()
    pair.child.sendall(proof.encode() + b"\n")
    assert await processes.refusal(GRANT, hello(proof)) is None


async def test_a_hello_for_a_bot_not_launched_here_is_refused(processes: LaunchedProcesses) -> None:
    refusal = await processes.refusal(GRANT, hello(nonce()))
    assert refusal is not None and "no running bot" in refusal


async def test_a_hello_without_a_proof_is_refused(processes: LaunchedProcesses) -> None:
    processes.launching("idle", "rsv-1")
    refusal = await processes.refusal(GRANT, hello(None))
    assert refusal is not None and "no launch proof" in refusal


async def test_a_hello_with_a_nonce_from_elsewhere_is_refused(processes: LaunchedProcesses) -> None:
    processes.launching("idle", "rsv-1").child.sendall(nonce().encode() + b"\n")
    refusal = await processes.refusal(GRANT, hello(nonce()))
    assert refusal is not None and "did not come through" in refusal


async def test_a_relaunched_bots_old_socket_no_longer_speaks_for_it(processes: LaunchedProcesses) -> None:
    old, proof = processes.launching("idle", "rsv-1"), nonce()
    old.child.sendall(proof.encode() + b"\n")
    processes.launching("idle", "rsv-1")  # the same bot id launched again: a new process, a new socket
    assert await processes.refusal(GRANT, hello(proof)) is not None


async def test_a_forgotten_bots_hello_is_refused_and_its_pair_closed(processes: LaunchedProcesses) -> None:
    pair, proof = processes.launching("idle", "rsv-1"), nonce()
    pair.child.sendall(proof.encode() + b"\n")
    processes.forget("idle", "rsv-1")
    assert closed(pair)
    assert await processes.refusal(GRANT, hello(proof)) is not None


async def test_closing_every_launch_socket_refuses_their_hellos_and_frees_them() -> None:
    processes = LaunchedProcesses()
    pair, proof = processes.launching("idle", "rsv-1"), nonce()
    pair.child.sendall(proof.encode() + b"\n")
    assert await processes.refusal(GRANT, hello(nonce())) is not None  # the proof is read, not yet spent
    processes.close()
    assert closed(pair)
    assert await processes.refusal(GRANT, hello(proof)) is not None


def test_the_proofs_one_use_record_is_keyed_by_a_digest_never_the_nonce() -> None:
    proof = nonce()
    seen = LaunchedProcesses().proof_seen(hello(proof))
    assert seen is not None and proof not in str(seen)
    assert LaunchedProcesses().proof_seen(hello(proof)) == seen  # the same nonce: one record across replicas
    assert LaunchedProcesses().proof_seen(hello(None)) is None

