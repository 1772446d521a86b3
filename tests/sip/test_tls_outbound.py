"""An outbound call over TLS with SRTP: `POST /calls` at a real local dispatcher hands the call to
`python -m sipedge`, whose INVITE goes to Debian's baresip as the far end over TLS (the trunk's
termination URI says `;transport=tls`), with SRTP mandatory on both sides. The edge checks the far
end's certificate against `tls_ca_file`: a callee whose certificate another CA signed is never rung."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.phone.conftest import phone_env, wait_active_sessions, wait_for_idle_bot
from tests.phone.test_parrot_websocket import voiced
from tests.sip.baresip_agent import Baresip, run_baresip
from tests.sip.certificates import TestCa
from tests.sip.conftest import EdgeProcess, run_edge
from tests.sip.edge_keys import KEY_SETTINGS, edge_keys
from tests.sip.test_baresip import CALL_SECONDS, RATE, write_caller_wav
from tests.support.audio import echo_similarity, read_wav
from tests.support.examples import PARROT
from tests.support.http_client import api_client
from tests.support.ports import free_port, free_port_pair
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher, the edge, baresip, a bot process importing Pipecat

EDGE_SECRET = "edge-control-secret-for-the-tls-tests-0123456789"
TO, FROM = "+14155550100", "+14155550199"  # baresip's account is TO's


@dataclass(frozen=True)
class SecureTrunk:
    dispatcher: DispatcherProcess
    edge: EdgeProcess
    ca: TestCa
    callee_ports: dict[str, int]  # trunk → its callee's SIP port (baresip's TLS listener is the next one)


@pytest.fixture(scope="module")
def secure_trunk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureTrunk]:
    ca = TestCa(tmp_path_factory.mktemp("ca"))
    server = ca.issue("edge")
    # A trunk, and a callee's port, for each test: a port just closed by the last callee may not be bound again.
    # Ports below the ephemeral range (baresip binds UDP and TCP on one, TLS on the next): a port the kernel
    # hands out could be another test's connection by the time the callee starts.
    control_port, ports = free_port(), {name: free_port_pair(2) for name in ("secure", "pinned")}
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "BOT_FILE": str(PARROT / "bot.py"),
           "SIP_EDGE_URL": f"http://127.0.0.1:{control_port}", "SIP_EDGE_SECRET": EDGE_SECRET}
    settings = (f'control_port = {control_port}\n{KEY_SETTINGS}\n'
                f'tls_port = {free_port()}\ntls_certificate_file = "{server.certificate}"\n'
                f'tls_private_key_file = "{server.private_key}"\ntls_ca_file = "{ca.certificate}"\n'
                "tls_port_firewalled = true")  # loopback only
    trunks = "".join(f'\n[[trunk]]\nname = "{name}"\ntermination_uri = "sip:127.0.0.1:{port + 1};transport=tls"\n'
                     f'callers = ["local"]\ncaller_ids = ["{FROM}"]\ncps = 50\nsrtp = "mandatory"\n'
                     for name, port in ports.items())
    with (run_dispatcher(tmp_path_factory.mktemp("sip-tls-out-dispatcher"), env) as dispatcher,
          run_edge(dispatcher, tmp_path_factory.mktemp("sip-tls-out-edge"), settings=settings, trunks=trunks,
                   env={**edge_keys(EDGE_SECRET, f"http://127.0.0.1:{control_port}")}) as edge):
        yield SecureTrunk(dispatcher, edge, ca, ports)


def callee(folder: Path, out: SecureTrunk, trunk: str, signer: TestCa) -> AbstractContextManager[Baresip]:
    """baresip listening for TLS with a certificate `signer` made, SRTP mandatory, speaking the caller's WAV."""
    pem = signer.issue("callee").combined(folder / "callee.pem")
    lines = f"sip_certificate\t\t{pem}\nsip_cafile\t\t{out.ca.certificate}\nmodule\t\t\tsrtp.so\n"
    return run_baresip(folder, folder / "caller.wav", lines, ";mediaenc=srtp-mand", sip_port=out.callee_ports[trunk])


async def test_a_call_placed_over_tls_with_srtp_is_answered_and_heard_back(
    secure_trunk: SecureTrunk, tmp_path: Path,
) -> None:
    speech = write_caller_wav(tmp_path / "caller.wav")
    async with api_client(base_url=secure_trunk.dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        with callee(tmp_path, secure_trunk, "secure", secure_trunk.ca) as phone:
            placed = await api.post("/calls", json={"to": TO, "from": FROM, "trunk": "secure"})
            assert placed.status_code == 201, placed.text
            await asyncio.to_thread(phone.wait_event, "CALL_INCOMING", timeout=CALL_SECONDS)
            accepted = await asyncio.to_thread(phone.command, "accept")
            assert accepted["ok"], accepted
            answered = await asyncio.to_thread(phone.wait_event, "CALL_ESTABLISHED", "CALL_CLOSED",
                                               timeout=CALL_SECONDS)
            assert answered["type"] == "CALL_ESTABLISHED", f"{answered}\n{secure_trunk.edge.log()}"
            closed = await asyncio.to_thread(phone.wait_event, "CALL_CLOSED", timeout=CALL_SECONDS)
            assert "end of file" in str(closed.get("param", "")), f"{closed}\n{secure_trunk.edge.log()}"
        assert await wait_active_sessions(api, 0) == 0
    [recording] = phone.recordings("dec")
    similarity = echo_similarity(voiced(speech), read_wav(recording).samples, RATE)
    assert similarity > 0.6, f"the callee's words came back at {similarity:.2f}\n{secure_trunk.edge.log()}"


async def test_a_callee_whose_certificate_the_edge_does_not_trust_is_never_rung(
    secure_trunk: SecureTrunk, tmp_path: Path,
) -> None:
    write_caller_wav(tmp_path / "caller.wav")
    async with api_client(base_url=secure_trunk.dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        with callee(tmp_path, secure_trunk, "pinned", TestCa(tmp_path, "a stranger's CA")) as phone:
            placed = await api.post("/calls", json={"to": TO, "from": FROM, "trunk": "pinned"})
            assert placed.status_code == 201, placed.text
            session_id = placed.json()["session_id"]
            outcomes = await call_outcomes(api, session_id)
            # The call is over, so the edge sends nothing more: baresip's events since it started, read now,
            # hold no incoming call.
            with pytest.raises(AssertionError, match="sent nothing wanted"):
                await asyncio.to_thread(phone.wait_event, "CALL_INCOMING", timeout=1)
        # PJSIP ends the call itself when the TLS connection fails its check: a local 503.
        assert [(o["outcome"], o.get("sip_status")) for o in outcomes] == [("rejected", 503)], \
            f"{outcomes}\n{secure_trunk.edge.log()}"
        assert await wait_active_sessions(api, 0) == 0


async def call_outcomes(api: httpx.AsyncClient, session_id: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The session's `call_outcome` events, once there is one."""
    deadline, outcomes = time.monotonic() + timeout, list[dict[str, Any]]()
    while not outcomes and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        answer = await api.get(f"/sessions/{session_id}/timeline")  # 404 until its first event
        timeline = answer.json()["events"] if answer.status_code == 200 else []
        outcomes = [e for e in timeline if e["event"] == "call_outcome"]
    return outcomes
