"""A loopback port that takes no connection and refuses none: its listener accepts nothing and its queue is
full, so the kernel drops each further SYN and a client's connect waits until its own bound (as for a server
behind a firewall that drops, or a host that is down). A call to it provably sent nothing."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

QUEUED = 8  # past any queue a `listen(0)` allows: the rest wait unanswered


@contextlib.contextmanager
def full_queue() -> Iterator[int]:
    """The port, held until the block ends."""
    with contextlib.ExitStack() as held:
        listener = held.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        for _ in range(QUEUED):
            queued = held.enter_context(socket.socket())
            queued.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                queued.connect(("127.0.0.1", port))
        yield port
