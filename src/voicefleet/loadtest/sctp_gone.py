"""A data channel's chunks dropped once the connection under them has gone, instead of failing a task
nobody awaits.

aiortc sends a data channel's chunks from tasks of its own that no one awaits: a message's flush, a
retransmission timer's resend, a stream reset. When the far end has gone (the bot hung up or crashed,
and ICE's consent expired or DTLS closed under the association) before the association itself is
stopped, such a task fails with ConnectionError, and asyncio prints it on the way out as "Task
exception was never retrieved" and a traceback, under a verdict that was right. A chunk sent on a
connection that is gone is a datagram lost, as aiortc's own abort treats it: dropped here, at the one
call every such task makes; any other error still fails its task.
"""

from __future__ import annotations

from aiortc.rtcsctptransport import Chunk, RTCSctpTransport


def drop_chunks_once_gone(sctp: RTCSctpTransport) -> None:
    """From now on, a chunk `sctp` sends on a transport that is no longer connected is dropped."""
    send = sctp._send_chunk

    async def send_chunk(chunk: Chunk) -> None:
        try:
            await send(chunk)
        except ConnectionError:  # raised only by a DTLS transport or ICE connection that is not connected
            pass

    sctp._send_chunk = send_chunk  # type: ignore[method-assign]
