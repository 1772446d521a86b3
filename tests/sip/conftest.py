"""A real local dispatcher running the parrot (tests/phone's way), and `python -m sipedge` in front of
it with one trunk: loopback 127.0.0.1 may call +14155550199; nothing else is allowed or served. The
cold pair keeps no reserve and its bots (tests/phone's echo bot, which reports what it was told)
start late, so a call rings for seconds."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from sipedge.supervisor import KAMAILIO
from tests.phone.conftest import phone_env, speech_8k
from tests.support.examples import PARROT
from tests.support.ports import free_port, free_port_pair
from tests.support.processes import DispatcherProcess, run_dispatcher, terminate

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

NUMBER = "+14155550199"
RTP_PORTS = 20
READY_SECONDS = 60.0
DRAIN_GRACE_SECONDS = 5.0  # at a test's end: the calls it left up, drained this long before they are hung up
COLD_START_SECONDS = 5
WAVE_FORMAT = {"alaw": 6, "ulaw": 7}


@dataclass(frozen=True)
class EdgeProcess:
    process: subprocess.Popen[bytes]
    sip_port: int
    log_path: Path
    workdir: Path  # SIPp runs here: speech_ulaw.wav and speech_alaw.wav are the caller's voice

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def parrot_dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    """One for every file's edges in a test process (each file's own edge in front of it): its calls end with
    each test, so a later file finds it as a new one would be, its reserve bot already up."""
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "BOT_FILE": str(PARROT / "bot.py")}
    with run_dispatcher(tmp_path_factory.mktemp("sip-dispatcher"), env) as running:
        yield running


@pytest.fixture(scope="module")
def cold_reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the cold pair's bot (tests/phone/echo_bot.py) writes what each call's bot was told."""
    return tmp_path_factory.mktemp("calls")


@pytest.fixture(scope="module")
def cold_dispatcher(cold_reports: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    env = {**phone_env(cold_reports), "RESERVE_MIN_IDLE": "0",
           # A bot that takes COLD_START_SECONDS to start, at least: the call rings that long.
           "LOCAL_BOT_COMMAND": f"sh -c 'sleep {COLD_START_SECONDS}; exec {sys.executable} -m bot'"}
    with run_dispatcher(tmp_path_factory.mktemp("sip-cold-dispatcher"), env) as running:
        yield running


def write_g711_wav(path: Path, pcm16: bytes, law: str) -> None:
    """A G.711 WAV (`law`: "ulaw" or "alaw"), the format SIPp's rtp_stream plays as payload type 0
    or 8. The standard library's `wave` writes PCM only, so its header is given G.711's format tag."""
    encoded = audioop.lin2ulaw(pcm16, 2) if law == "ulaw" else audioop.lin2alaw(pcm16, 2)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(8000)
        out.writeframes(encoded)
    data = bytearray(path.read_bytes())
    data[20:22] = WAVE_FORMAT[law].to_bytes(2, "little")  # the fmt chunk's format tag (1: PCM)
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def edge(parrot_dispatcher: DispatcherProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    with run_edge(parrot_dispatcher, tmp_path_factory.mktemp("sip-edge")) as running:
        yield running


@pytest.fixture(scope="module")
def cold_edge(cold_dispatcher: DispatcherProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    with run_edge(cold_dispatcher, tmp_path_factory.mktemp("sip-cold-edge")) as running:
        yield running


@contextmanager
def run_edge(dispatcher: DispatcherProcess | str, workdir: Path, numbers: str = f'"{NUMBER}" = ""',
             env: dict[str, str] | None = None, workers: int = 1, settings: str = "",
             trunks: str = "", trunk_settings: str = "") -> Iterator[EdgeProcess]:
    """`python -m sipedge` in front of `dispatcher` (or the URL given), stopped on exit (`stop_edge`).
    `numbers`: the trunk's TOML table of numbers (each to the variable holding its key: "" for none);
    `env`: those variables; `workers` > 1, or an inbound digest credential: Kamailio in front of that many PJSIP
    workers; `settings`: more top-level TOML lines, `trunks`: more `[[trunk]]` tables, `trunk_settings`: more
    lines of the first."""
    front = workers > 1 or "inbound_digest_username" in trunk_settings + trunks
    if front and not os.access(KAMAILIO, os.X_OK):
        pytest.skip(f"Kamailio is not installed at {KAMAILIO} (Debian's kamailio: .ci/run installs it)")
    sip_port = free_port(socket.SOCK_DGRAM)
    config = workdir / "edge.toml"
    url = dispatcher if isinstance(dispatcher, str) else dispatcher.base_url
    rtp_ports = RTP_PORTS * workers
    # The workers' SIP and control ports (the latter used with control_port), each a block free here.
    several = (f"workers = {workers}\nworker_sip_port = {free_port_pair(workers)}\n"
               f"worker_control_port = {free_port_pair(workers)}\n") if front else ""
    config.write_text(
        f'dispatcher_url = "{url}"\nsip_address = "127.0.0.1"\nsip_port = {sip_port}\n'
        f"rtp_port = {free_port_pair(rtp_ports)}\nrtp_port_count = {rtp_ports}\nanswer_seconds = 45\n{several}"
        f"{settings}\n"
        f'[[trunk]]\nname = "loopback"\nsources = ["127.0.0.1/32"]\nnumbers = {{ {numbers} }}\n{trunk_settings}\n'
        f"{trunks}")
    with started_edge(config, sip_port, workdir, env) as running:
        yield running


@contextmanager
def started_edge(config: Path, sip_port: int, workdir: Path, env: dict[str, str] | None = None,
                 part: str = "", *, inherit: bool = True) -> Iterator[EdgeProcess]:
    """`python -m sipedge [part]` with the file `config` (its SIP port `sip_port`) and `env` added (to this process's
    environment, or with `inherit` False to its PATH, HOME and PYTHONPATH alone), once it is ready; stopped on exit
    (`stop_edge`). SIPp's voice files are written into `workdir`."""
    if shutil.which("sipp") is None:
        pytest.skip("SIPp is not installed (Debian's sip-tester: .ci/run installs it)")
    for law in WAVE_FORMAT:
        write_g711_wav(workdir / f"speech_{law}.wav", speech_8k(), law)
    log_path = workdir / f"edge{'-' if part else ''}{part}.log"
    base = os.environ if inherit else {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "PYTHONPATH")}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "sipedge", *([part] if part else [])], stdout=log,
                                   stderr=log, env={**base, **(env or {}), "SIP_EDGE_CONFIG": str(config)})
    running = EdgeProcess(process, sip_port, log_path, workdir)
    try:
        deadline = time.monotonic() + READY_SECONDS
        while "sipedge: ready" not in running.log():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sipedge did not come up:\n{running.log()}")
            time.sleep(0.05)
        yield running
    finally:
        stop_edge(process)


def stop_edge(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, which drains whatever calls a test left up (none once it passed: the edge exits at once), then a
    second after DRAIN_GRACE_SECONDS, which hangs them up (sipedge/drain.py), then SIGKILL; always reaped."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=DRAIN_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            terminate(process)
