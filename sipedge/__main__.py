"""`python -m sipedge`: the SIP edge, configured by the TOML file SIP_EDGE_CONFIG names (docs/sip.md)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from sipedge.config import ConfigError, load
from sipedge.control import Control
from sipedge.edge import Edge


async def _main() -> None:
    config = load(os.environ)
    edge = Edge(config, asyncio.get_running_loop())
    if config.control_secret is None:
        await edge.run()
        return
    control = Control(edge, config.control_secret)  # outbound calls, handed over by the dispatcher
    await control.start()
    try:
        await edge.run()
    finally:
        await control.close()


def main() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(_main())
    except ConfigError as exc:
        sys.exit(f"sipedge: {exc}")


if __name__ == "__main__":
    main()
