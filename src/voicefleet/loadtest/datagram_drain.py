"""A caller's UDP sockets read in bursts: asyncio reads one datagram each time its loop finds a socket
readable, so a caller whose loop turn takes longer than the 20 ms between two of a bot's audio packets
(a process short of CPU, several calls in it) reads them slower than they come and falls behind for
good: three calls in one caller beside busy processes (load 8 on 2 cores) heard the bot's audio 13 s
after it was sent, its bot host keeping time. Reading up to 32 at once (burst_transport.py), as the mic
sends its blocks (webrtc.py's CATCH_UP_BLOCKS), kept it within 2 s at a load of 15 (docs/evals.md,
"How the caller hears the bot").

Those sockets are the caller's own, read through the loop's public `add_reader` (BurstTransport): the
loop the caller asked for makes one for every UDP endpoint bound to a local address (aioice's host
candidates) and leaves any other to asyncio; a loop of another kind (uvloop's) is left as it is."""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import Callable
from typing import Any

from voicefleet.loadtest.burst_transport import BurstTransport

_OWN = "_voicefleet_reads_in_bursts"


def read_in_bursts(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """The UDP endpoints bound to a local address that `loop` (the running one) makes from now on read in
    bursts."""
    loop = loop or asyncio.get_running_loop()
    if getattr(loop, _OWN, False) or not isinstance(loop, asyncio.SelectorEventLoop):
        return
    made = loop.create_datagram_endpoint
    loop.create_datagram_endpoint = functools.partial(_endpoint, loop, made)  # type: ignore[method-assign,assignment]
    setattr(loop, _OWN, True)


async def _endpoint(loop: asyncio.AbstractEventLoop, made: Callable[..., Any],
                    protocol_factory: Callable[[], asyncio.DatagramProtocol],
                    local_addr: tuple[str, int] | None = None,
                    **others: Any) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
    if local_addr is None or others:  # a connected, reused or given socket: asyncio's own
        made_transport, made_protocol = await made(protocol_factory, local_addr=local_addr, **others)
        return made_transport, made_protocol
    infos = await loop.getaddrinfo(*local_addr, type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    protocol = protocol_factory()
    transport = BurstTransport(loop, sock, protocol)
    try:  # returned once the protocol has it, as asyncio's endpoint is (aioice reads it at once)
        await transport.made
    except BaseException:
        transport.close()
        raise
    return transport, protocol
