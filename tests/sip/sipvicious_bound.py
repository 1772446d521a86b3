"""`python -m tests.sip.sipvicious_bound svwar|svcrack ARGS…`: SIPVicious' own svwar or svcrack (its main(), as the
`sipvicious_svwar` and `sipvicious_svcrack` commands run it), its socket bound to the address `-b` names. Their
main() (0.3.8) reads `-b` and never passes it on, so on loopback they send from 127.0.0.1 whatever `-b` says: a
stranger's scan would come from the trunk's own address. svmap passes it on: its command runs as installed.
With SVCRACK_SAME_FROM_TAG set, svcrack also answers a challenge with its first request's From tag, as a cracker
fixed for a server that binds its nonces to the tag would (tests/sip/test_sipvicious.py)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

# svcrack sends its response to a challenge with a From tag of its own (its createTag), so a nonce bound to the
# challenged request's From tag never matches: with SAME_FROM_TAG set it keeps its first request's (its constant).
SAME_FROM_TAG, FIRST_FROM_TAG = "SVCRACK_SAME_FROM_TAG", b"3206210844"
SCANNERS = {"svwar": "TakeASip", "svcrack": "ASipOfRedWine"}  # each tool's class that binds the socket


def main() -> None:
    tool = sys.argv.pop(1)
    module: Any = importlib.import_module(f"sipvicious.{tool}")
    scanner = getattr(module, SCANNERS[tool])
    address = sys.argv[sys.argv.index("-b") + 1] if "-b" in sys.argv else ""
    unbound = scanner.__init__

    def bound(self: object, *args: Any, **kwargs: Any) -> None:
        unbound(self, *args, **{**kwargs, "bindingip": address})

    scanner.__init__ = bound
    if os.environ.get(SAME_FROM_TAG):
        module.createTag = lambda data: FIRST_FROM_TAG
    sys.argv[0] = f"sipvicious_{tool}"
    module.main()


if __name__ == "__main__":
    main()
