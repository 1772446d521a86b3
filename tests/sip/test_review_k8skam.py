"""Review of the edge's two parts run apart (sipedge/edge_part.py, sipedge/supervisor.py `_drain`, `run`), as a
Kubernetes pod runs them: `python -m sipedge front` beside `python -m sipedge workers`, both told SIGTERM together.

- With `drain_seconds = 0` the front's part returns from `_drain` at once and `run` stops Kamailio, whatever its
  workers still hold: the workers' part, told SIGTERM at the same moment, hangs its calls up with BYE, which goes
  to the trunk through Kamailio (record-routed), now gone. A whole edge stops its workers first "while Kamailio can
  still carry their BYEs to the trunk", and docs/sip.md#draining promises a call still up at a drain of 0 "gets the
  edge's BYE"; the front apart must outlast its workers' stop (their ports, as with a drain) in this case too.
- `shared_tokens` takes any three values of 32 characters or more: the same one thrice, which hands the front's
  token (read off a trunk's INVITE by whoever binds a worker's port while it restarts, sipedge/worker_place.py) the
  power of the workers' call token; or one with a quote or a space, which `render` writes inside a quoted string of
  kamailio.cfg (`$hdr(P-Edge-Token) != "<token>"`), ending the string early (Kamailio refuses the file, or the
  condition is rewritten) and which no worker's `\\S+` header match can ever equal. The stack derives base64url
  tokens (stacks/k8s/sip_edge_tokens.py), but the parts are a public command: a clear refusal at start is the way.
Each was a strict-xfail test until fixed: the front apart now outlasts its workers with no drain too, and
`shared_tokens` refuses two equal tokens and any token outside base64url, naming the variables."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
from pathlib import Path

import pytest

from sipedge.config import ConfigError, load
from sipedge.edge_part import DRAIN_TOKEN_VARIABLE, Part, Tokens, shared_tokens
from sipedge.supervisor import KAMAILIO, Supervisor, _answers_options
from sipedge.worker_place import CALL_TOKEN_VARIABLE, TOKEN_VARIABLE, new_token
from tests.sip.kamailio_front import EDGE, NUMBER, READY_SECONDS, TRUNK, _worker_sockets
from tests.support.ports import free_port

STOPPED_SECONDS = 60.0  # the front's stop once its workers' ports are free: Kamailio's stop and its log readers'


@pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK), reason="Kamailio is not installed (.ci/run installs it)")
async def test_with_no_drain_the_front_apart_stays_up_while_its_workers_still_hold_their_ports(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first, sockets = _worker_sockets(2)  # the workers' ports, held as the workers' part holds them while it stops
    port = free_port(socket.SOCK_DGRAM)
    path = tmp_path / "edge.toml"
    path.write_text(EDGE.format(workers=2, host="127.0.0.1", port=port, worker_port=first, sources=f"{TRUNK}/32",
                                number=NUMBER,
                                settings="drain_seconds = 0", trunk_settings=""))
    config = load({"PATH": "/usr/bin:/bin", "SIP_EDGE_CONFIG": str(path)}, other_secrets=False)
    front = Supervisor(config, Part.FRONT, Tokens.new())
    loop = asyncio.get_running_loop()
    caplog.set_level(logging.INFO, logger="sipedge")
    running = asyncio.create_task(front.run())
    try:
        deadline = loop.time() + READY_SECONDS
        while "(this process runs the front alone)" not in caplog.text:  # started: its stop now drains
            assert not running.done() and loop.time() < deadline, "the front did not start"
            await asyncio.sleep(0.05)
        front._signalled(signal.SIGTERM)  # the pod's stop: the workers' container is told at the same moment
        done, _ = await asyncio.wait({running}, timeout=3.0)
        assert not done, "Kamailio stopped while the workers still held their SIP ports (their BYEs go through it)"
        assert await asyncio.to_thread(_answers_options, "127.0.0.1", port)
    finally:
        for sock in sockets:
            sock.close()  # the workers have gone: the front stops now
        await asyncio.wait({running}, timeout=STOPPED_SECONDS)
        if not running.done():
            running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        shutil.rmtree(front._folder, ignore_errors=True)


def _tokens(front: str, call: str, drain: str) -> dict[str, str]:
    return {TOKEN_VARIABLE: front, CALL_TOKEN_VARIABLE: call, DRAIN_TOKEN_VARIABLE: drain}


def test_the_parts_refuse_one_value_for_two_of_their_tokens() -> None:
    same = new_token()
    for tokens in (_tokens(same, same, same), _tokens(same, same, new_token()), _tokens(same, new_token(), same)):
        with pytest.raises(ConfigError, match="differ|same"):
            shared_tokens(tokens)


@pytest.mark.parametrize("bad", ['" || 1 == 1 || "' + "x" * 32, "a b " + "x" * 32, "x" * 32 + "\n"])
def test_the_parts_refuse_a_token_kamailio_cfg_cannot_hold_as_it_is(bad: str) -> None:
    with pytest.raises(ConfigError, match=CALL_TOKEN_VARIABLE) as refused:
        shared_tokens(_tokens(new_token(), bad, new_token()))
    assert bad.strip() not in str(refused.value)  # the variable is named, never its value
