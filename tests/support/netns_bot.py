"""`LOCAL_BOT_COMMAND` for relay tests: run `python -m bot` inside another network namespace.

    LOCAL_BOT_COMMAND="<python> -m tests.support.netns_bot <namespace>"

The local provider appends its flags; this replaces itself (exec, same pid, so the provider's
signals and its parent-death signal reach the bot) with `ip netns exec <namespace> <python> -m
bot <flags>`. The bot then dials the dispatcher's channel across the namespaces, as a cloud
bot dials its dispatcher, and listens on nothing.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    namespace, *bot_args = sys.argv[1:]
    os.execvp("ip", ["ip", "netns", "exec", namespace, sys.executable, "-m", "bot", *bot_args])


if __name__ == "__main__":
    main()
