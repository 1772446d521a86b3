"""The edge an AWS, GCP or Kubernetes stack boots, for real: the file those stacks render from their `sipEdge` key
(stacks/config/sip_edge.py `render`, the same function and the same key set a stack holds: a carrier
trunk with its sources, a number run as a dispatcher key read from its variable, a price, an outbound
termination) run by `python -m sipedge` beside a real local dispatcher and its parrot (one for the
module).

What a test must change to run here, and nothing else, is passed to `render` as a stack passes its own:
free SIP and control ports instead of the fixed 5060 and 5080 the stack's firewall opens, the local
dispatcher's URL, and the address of a link to a stranger's network namespace (tests/support/
stranger_net.py) as the host's private and public address. The trunk's `sources` is loopback, so SIPp
calling from 127.0.0.1 is the carrier: answered by the bot, priced, ended by its BYE; the same SIPp in
the stranger's namespace is refused 403. A stack with several workers renders a file whose Kamailio
front the edge writes, and Kamailio itself must accept it; a Kubernetes pod's file with two workers and a trunk's
inbound digest credential runs its front and answers the PBX that answers Kamailio's challenge.

One real call per form the stacks run: a VM's (AWS, GCP: the host's address in the file, `python -m sipedge`
alone) with its stranger refused, and a Kubernetes pod's fronted edge (the node's address in a variable, the
front and the workers apart, as the pod's two containers run them). Checked elsewhere: the pod's rendered file
loaded with the node's address from its variable (tests/infra/k8s/test_sip_edge.py), a real edge binding the
address its variable holds (tests/sip/test_edge_start.py), one `python -m sipedge` with workers and a trunk's
inbound digest credential answering a PBX's digest call (tests/sip/test_inbound_digest_calls.py)."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dispatcher.phone.edge_secret import EdgeSecret
from sipedge.config import load as load_edge
from sipedge.edge_part import DRAIN_TOKEN_VARIABLE
from sipedge.front_config import write_front
from sipedge.supervisor import KAMAILIO
from sipedge.worker_place import CALL_TOKEN_VARIABLE, TOKEN_VARIABLE, new_token
from stacks.config.sip_edge import (
    CONTROL_KEY_VARIABLE,
    EDGE_CREDENTIAL_VARIABLE,
    SipEdgeSettings,
    api_key_variable,
    edge_environment,
    inbound_digest_variable,
    render,
)
from stacks.config.sip_edge_keys import SipEdgeKey
from stacks.config.sip_edge_nodes import NODE_ADDRESS_VARIABLE
from tests.phone.conftest import phone_env, wait_active_sessions, wait_for_idle_bot
from tests.sip.conftest import NUMBER, READY_SECONDS, RTP_PORTS, started_edge
from tests.sip.sipp import run_sipp
from tests.sip.test_call_price import cost_once_ended
from tests.sip.test_calls import call_id_of, session_ids, session_of
from tests.support.examples import PARROT
from tests.support.http_client import api_client
from tests.support.ports import free_port, free_port_pair
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.session_api import METRICS_ADMIN
from tests.support.stranger_net import StrangerNet, stranger_net, unavailable_reason

pytestmark = pytest.mark.slow  # a real dispatcher, the edge, a bot process and SIPp twice

KEY_NAME = "team-a"  # the dispatcherApiKeys name the number runs as: the edge reads its key from a variable
KEY = "stack-rendered-edge-key-0123456789"
SECRET = "stack-rendered-edge-secret-0123456789"  # SIP_EDGE_SECRET, the dispatcher's alone
USD_PER_MINUTE = 0.6  # inbound; billed by the edge's default increment, a whole minute


def carrier_key(rtp_ports: str, **more: Any) -> SipEdgeKey:
    """A `sipEdge` key as a stack holds it, its trunk's SIP from loopback (this test's carrier)."""
    return SipEdgeKey.model_validate({"enabled": True, "rtpPorts": rtp_ports, "answerSeconds": 45, **more, "trunks": [
        {"name": "carrier", "sources": ["127.0.0.0/8"], "mediaSources": ["127.0.0.0/8"],
         "numbers": {NUMBER: KEY_NAME}, "terminationUri": "sip:voicefleet.pstn.example.com",
         "destinations": ["+1*"], "usdPerMinute": {"inbound": USD_PER_MINUTE, "outbound": 0.9}}]})


def settings_of(key: SipEdgeKey) -> SipEdgeSettings:
    """The settings `stacks.config.sip_edge.load` makes of `key` (its secret store's variables by name)."""
    low, high = (int(port) for port in key.rtp_ports.split("-"))
    named: Any = dict.fromkeys((api_key_variable(KEY_NAME),))
    return SipEdgeSettings(key, low, high - low + 1, named)


@pytest.fixture
def stranger() -> Iterator[StrangerNet]:
    if (why := unavailable_reason()) is not None:
        pytest.skip(f"a caller from a source outside the trunk's needs a network namespace: {why}")
    with stranger_net("sb") as net:
        yield net


@pytest.fixture(scope="module")
def key_dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    """The local dispatcher and its parrot, knowing the number's key and the edge's secret: one for
    both forms (each call its own session)."""
    reports = tmp_path_factory.mktemp("reports")
    env = {**phone_env(reports), "BOT_FILE": str(PARROT / "bot.py"), "DISPATCHER_API_KEYS": KEY,
           "SIP_EDGE_SECRET": SECRET, **METRICS_ADMIN}
    with run_dispatcher(tmp_path_factory.mktemp("stack-rendered-dispatcher"), env) as running:
        yield running


async def test_the_edge_a_vm_stack_renders_answers_its_carrier_and_refuses_a_stranger(
        key_dispatcher: DispatcherProcess, stranger: StrangerNet, tmp_path: Path) -> None:
    """The host's address in the file, as a VM's stack (AWS, GCP) renders it: the Kubernetes form (the node's
    address in a variable) is the fronted pod's below."""
    free = free_port_pair(RTP_PORTS + 1)
    rtp_port = free + free % 2  # even, as rtpPorts must start
    key = carrier_key(f"{rtp_port}-{rtp_port + RTP_PORTS - 1}")
    sip_port = free_port(socket.SOCK_DGRAM)
    dispatcher = key_dispatcher
    config = tmp_path / "edge.toml"
    control_port = free_port()
    config.write_text(render(settings_of(key), dispatcher_url=dispatcher.base_url,
                             sip_address=stranger.host_address, public_address=stranger.host_address,
                             sip_port=sip_port, control_port=control_port))
    assert "sip_address_env" not in config.read_text()
    # The stack's secret store's: the edge's credentials derived for its control URL, never SIP_EDGE_SECRET.
    derived, url = EdgeSecret(SECRET), f"http://{stranger.host_address}:{control_port}"
    secrets = {api_key_variable(KEY_NAME): KEY, EDGE_CREDENTIAL_VARIABLE: derived.edge_credential(url),
               CONTROL_KEY_VARIABLE: derived.control_credential(url)}
    with started_edge(config, sip_port, tmp_path, secrets) as edge:
        async with api_client(base_url=dispatcher.base_url, timeout=30,
                              headers={"Authorization": f"Bearer {KEY}"}) as api:
            await wait_for_idle_bot(api)
            call = await asyncio.to_thread(run_sipp, "call_answered", NUMBER, sip_port, tmp_path,
                                           edge_address=stranger.host_address, media_port=free_port_pair(2))
            assert call.returncode == 0, f"{call.output}\n{call.messages[-3000:]}\n{edge.log()[-3000:]}"
            assert call.statuses()[-1] == 200 and "BYE" in call.messages  # the caller's BYE, answered
            session_id = session_of(edge, call_id_of(call.messages))
            assert session_id is not None, edge.log()
            cost = await cost_once_ended(api, session_id)  # the bot ran the call, the trunk's price on it
            assert cost["telephony_usd"] == pytest.approx(USD_PER_MINUTE), cost
            assert await wait_active_sessions(api, 0) == 0

            before = await session_ids(api)
            refused = await asyncio.to_thread(
                run_sipp, "call_forbidden", NUMBER, sip_port, tmp_path, source=stranger.address,
                edge_address=stranger.host_address, command_prefix=stranger.exec_prefix)
            assert refused.returncode == 0, f"{refused.output}\n{refused.messages[-3000:]}\n{edge.log()[-3000:]}"
            assert 403 in refused.statuses() and 200 not in refused.statuses()
            assert session_id in before  # the carrier's call's
            assert await session_ids(api) == before  # the stranger's asked for none


@pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK), reason="Kamailio is not installed (.ci/run installs it)")
def test_kamailio_accepts_the_front_of_a_rendered_edge_with_several_workers(tmp_path: Path) -> None:
    key = carrier_key("40000-40399", workers=3)
    settings = settings_of(key)
    path = tmp_path / "edge.toml"
    path.write_text(render(settings, dispatcher_url="https://voice.example.com", sip_address="127.0.0.1",
                           public_address="203.0.113.10"))
    edge = load_edge({"SIP_EDGE_CONFIG": str(path), **edge_environment(settings)})
    files = write_front(edge, tmp_path, edge.workers, new_token())
    checked = subprocess.run([KAMAILIO, "-c", "-f", str(files.config)], capture_output=True, text=True, timeout=30,
                             check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = files.config.read_text()
    assert "src_ip == 127.0.0.0/8" in text and "listen=udp:127.0.0.1:5060 advertise 203.0.113.10:5060\n" in text


@dataclass(frozen=True)
class FrontedPodEdge:
    """The file a Kubernetes pod gets for two workers and a trunk with an inbound digest credential, and the secrets
    its pod holds: the inbound password, and the workers' (the number's key, the edge's two credentials)."""

    config: Path
    sip_port: int
    password: str
    workers_secrets: dict[str, str]


def fronted_pod_edge(dispatcher: DispatcherProcess, tmp_path: Path) -> FrontedPodEdge:
    free = free_port_pair(2 * RTP_PORTS + 1)
    rtp_port = free + free % 2
    key = carrier_key(f"{rtp_port}-{rtp_port + 2 * RTP_PORTS - 1}", workers=2)
    key = key.model_copy(update={"trunks": [key.trunks[0].model_copy(update={"inbound_digest_username": "pbx"})]})
    settings = settings_of(key)
    assert settings.front and len(settings.worker_sip_ports) == 2
    sip_port = free_port_pair(3)  # the front's, then the workers' (the edge's default, as the pod declares them)
    control_port = free_port_pair(3)  # the edge's, then the workers' (control_port + 1 on, the edge's default)
    config = tmp_path / "edge.toml"
    config.write_text(render(settings, dispatcher_url=dispatcher.base_url, sip_address=None,
                             public_address="127.0.0.1", sip_port=sip_port, control_port=control_port,
                             address_variable=NODE_ADDRESS_VARIABLE))
    derived, url = EdgeSecret(SECRET), f"http://127.0.0.1:{control_port}"
    return FrontedPodEdge(config, sip_port, secrets.token_urlsafe(16), {
        api_key_variable(KEY_NAME): KEY, EDGE_CREDENTIAL_VARIABLE: derived.edge_credential(url),
        CONTROL_KEY_VARIABLE: derived.control_credential(url)})


@pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK), reason="Kamailio is not installed (.ci/run installs it)")
async def test_the_kubernetes_edges_two_parts_apart_answer_a_pbxs_digest_call_and_the_front_outlasts_the_workers(
        key_dispatcher: DispatcherProcess, tmp_path: Path) -> None:
    """As a Kubernetes pod runs a fronted edge: `python -m sipedge workers` holding every secret but the inbound
    password, `python -m sipedge front` holding that password alone, both the same tokens. Kamailio challenges the
    PBX and a worker answers; stopped, the front refuses new calls and stays up until the workers have gone."""
    pod = fronted_pod_edge(key_dispatcher, tmp_path)
    config, sip_port, password = pod.config, pod.sip_port, pod.password
    tokens = {variable: new_token() for variable in (TOKEN_VARIABLE, CALL_TOKEN_VARIABLE, DRAIN_TOKEN_VARIABLE)}
    both = {NODE_ADDRESS_VARIABLE: "127.0.0.1", **tokens}
    workers_env = {**pod.workers_secrets, **both}
    front_env = {inbound_digest_variable("carrier"): password, **both}
    (tmp_path / "workers").mkdir()
    with started_edge(config, sip_port, tmp_path / "workers", workers_env, "workers", inherit=False) as workers, \
            started_edge(config, sip_port, tmp_path, front_env, "front", inherit=False) as front:
        async with api_client(base_url=key_dispatcher.base_url, timeout=30,
                              headers={"Authorization": f"Bearer {KEY}"}) as api:
            await wait_for_idle_bot(api)
            call = await asyncio.to_thread(run_sipp, "call_echo_digest", NUMBER, sip_port, tmp_path,
                                           media_port=free_port_pair(2), credential=("pbx", password))
            logs = f"{workers.log()[-3000:]}\n{front.log()[-3000:]}"
            assert call.returncode == 0, f"{call.output}\n{call.messages[-3000:]}\n{logs}"
            assert call.final_answers("1 INVITE") == {407} and call.final_answers("2 INVITE") == {200}
            assert session_of(workers, call_id_of(call.messages)) is not None, logs
            assert await wait_active_sessions(api, 0) == 0
        front.process.send_signal(signal.SIGTERM)  # first, as a pod's two containers may be told in any order
        deadline = time.monotonic() + READY_SECONDS
        while "until the workers have stopped" not in front.log():
            assert front.process.poll() is None and time.monotonic() < deadline, front.log()
            await asyncio.sleep(0.05)
        assert front.process.poll() is None  # the workers still hold their ports: it carries their calls' requests
        workers.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(workers.process.wait, READY_SECONDS) == 0, workers.log()
        assert await asyncio.to_thread(front.process.wait, READY_SECONDS) == 0, front.log()
        assert "the workers have stopped" in front.log()
