"""`python -m dispatcher.phone.edge_credentials URL…`: the two values an edge you run yourself holds, derived for
each control URL (as `SIP_EDGE_URL` lists it) from `SIP_EDGE_SECRET`, read from the environment, never the
command line. Prints `SIP_EDGE_CONTROL_KEY=…` and `SIP_EDGE_CREDENTIAL=…` lines for the edge's env file
(docs/sip.md#edge-credentials); a stack derives them itself."""

from __future__ import annotations

import os
import sys

from dispatcher.phone.edge_secret import EdgeSecret
from dispatcher.phone.sip_edges import edge_urls
from dispatcher.settings import SettingsError


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: SIP_EDGE_SECRET=… python -m dispatcher.phone.edge_credentials http://<edge>:5080 …",
              file=sys.stderr)
        return 2
    try:
        secret = EdgeSecret.from_env(os.environ, needed_by="deriving an edge's credentials")
        urls = edge_urls(",".join(argv))
    except SettingsError as exc:
        print(f"edge_credentials: {exc}", file=sys.stderr)
        return 2
    assert secret is not None  # noqa: S101 - from_env raises rather than answer None when needed
    for url in urls:
        if len(urls) > 1:
            print(f"# {url}")
        print(f"SIP_EDGE_CONTROL_KEY={secret.control_credential(url)}")
        print(f"SIP_EDGE_CREDENTIAL={secret.edge_credential(url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
