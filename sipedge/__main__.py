"""`python -m sipedge`: the SIP edge, configured by the TOML file SIP_EDGE_CONFIG names (docs/sip.md):
one PJSIP process, or Kamailio in front of `workers` of them, started and watched here, with several workers
or with a trunk's inbound digest credential, which only Kamailio checks (sipedge/config.py `front_runs`).
`python -m sipedge front` and `python -m sipedge workers` run those two parts apart (sipedge/edge_part.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import faulthandler
import logging
import os
import signal
import sys

from sipedge.code_version import code_version
from sipedge.config import ConfigError, load
from sipedge.control import Control
from sipedge.control_front import CONTROL_LINE
from sipedge.edge import Edge
from sipedge.edge_part import Part, part_of, shared_tokens
from sipedge.supervisor import Supervisor
from sipedge.worker_place import CALL_TOKEN_VARIABLE, TOKEN_VARIABLE, WORKER_VARIABLE, worker_index


async def _main(part: Part) -> None:
    # A worker's environment lacks the inbound digest passwords, which the supervisor checked (Kamailio's alone);
    # so does the workers' part's, and the front's part holds those alone.
    config = load(os.environ, inbound_passwords=WORKER_VARIABLE not in os.environ and part is not Part.WORKERS,
                  other_secrets=part is not Part.FRONT)
    code_version()  # read now: `version` names the code this process loaded, whatever the disk holds later
    if part is not Part.WHOLE:
        if not config.front:
            raise ConfigError(f"`python -m sipedge {part.value}` runs a part of an edge with Kamailio's front "
                              "(workers > 1, or a trunk's inbound digest credential): run `python -m sipedge`")
        await Supervisor(config, part, shared_tokens(os.environ)).run()
        return
    worker = worker_index(os.environ, config)
    if worker is None and config.front:
        await Supervisor(config).run()
        return
    edge = Edge(dataclasses.replace(config, worker=worker, front_token=os.environ.get(TOKEN_VARIABLE),
                                    call_token=os.environ.get(CALL_TOKEN_VARIABLE)), asyncio.get_running_loop())
    # A worker serves its control API only for the edge's own, which alone passes requests on to it.
    if config.control_secret is None or (worker is not None and not config.worker_control_port):
        await edge.run()
        return
    control = Control(edge, config.control_secret)  # outbound calls and transfers, handed over by the dispatcher
    port = await control.start()
    if worker is not None:  # the supervisor's control API passes requests on to it (sipedge/control_front.py)
        print(f"{CONTROL_LINE}{port}", flush=True)
    try:
        await edge.run()
    finally:
        await control.close()


def main() -> None:
    worker = os.environ.get(WORKER_VARIABLE, "")  # a worker's lines name it: the edge's log is theirs together
    named = f"[worker {worker}] " if worker.isdigit() else ""
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(),
                        format=f"%(asctime)s %(levelname)s %(name)s {named}%(message)s")
    # `kill -USR1 PID` writes every thread's stack to the log: an edge that stops answering shows where
    # its SIP, media and event-loop threads wait, without stopping it.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        asyncio.run(_main(part_of(sys.argv[1:])))
    except ConfigError as exc:
        sys.exit(f"sipedge: {exc}")


if __name__ == "__main__":
    main()
