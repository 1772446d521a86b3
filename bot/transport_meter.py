"""What a WebRTC call's connection carried and how: the selected ICE candidate pair's two types and
the bytes and packets through it, for the TURN relay's share of the session's cost
(botchannel/transport_use.py; the dispatcher prices it: dispatcher/usage/relay_cost.py).

Read from aiortc, whose counters are real: its `RTCDtlsTransport` counts each datagram it hands to
or takes from its ICE transport (SRTP, SRTCP, DTLS and the data channel's SCTP, as the relay carries
them; `bytesSent`/`bytesReceived`, `packetsSent`/`packetsReceived` of the `RTCTransportStats` that
`RTCPeerConnection.getStats()` gives: aiortc/rtcdtlstransport.py's `_get_stats`), the UDP, IP and
TURN headers left out. Those counters outlive the connection's close, so the `ended` report reads
the whole call. aiortc exposes no selected pair: it is read from aioice, the ICE agent under its
`RTCIceTransport` (`_connection._nominated`, the pair nominated per component; aioice/ice.py), while
the connection is up, and kept: aioice forgets it at its close. A version of either that moved them
leaves the pair unknown and the report without a transport, never a wrong one.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection
from aiortc.stats import RTCTransportStats
from loguru import logger

from botchannel.transport_use import CANDIDATE_TYPES

MAX_CONNECTIONS = 8  # a renegotiation that restarts the connection makes another; a call has a few


class TransportMeter:
    def __init__(self) -> None:
        self._connections: list[RTCPeerConnection] = []
        self._pair: tuple[str, str] | None = None  # (local, remote) candidate types, as last seen

    def follow(self, pc: RTCPeerConnection) -> None:
        """A connection of the call (again on a renegotiation: counted once), its pair read now."""
        if pc not in self._connections and len(self._connections) < MAX_CONNECTIONS:
            self._connections.append(pc)
        self._pair = selected_pair(pc) or self._pair

    async def report(self) -> dict[str, Any] | None:
        """The call's transport so far, or None before a pair was seen (not a WebRTC call, not up)."""
        for pc in self._connections:  # the newest pair seen while a connection is up
            self._pair = selected_pair(pc) or self._pair
        if self._pair is None:
            return None
        counts = dict.fromkeys(("bytes_sent", "bytes_received", "packets_sent", "packets_received"), 0)
        for pc in self._connections:
            try:
                stats = await pc.getStats()
            except Exception as exc:  # aiortc's own failure: the counts stay as far as they got
                logger.debug(f"transport stats not read: {type(exc).__name__}")
                continue
            for item in stats.values():  # one entry per DTLS transport (bundled: one), keyed by its id
                if isinstance(item, RTCTransportStats):
                    counts["bytes_sent"] += item.bytesSent
                    counts["bytes_received"] += item.bytesReceived
                    counts["packets_sent"] += item.packetsSent
                    counts["packets_received"] += item.packetsReceived
        local, remote = self._pair
        return {"local_candidate": local, "remote_candidate": remote, **counts}


def selected_pair(pc: RTCPeerConnection) -> tuple[str, str] | None:
    """The (local, remote) candidate types of the pair ICE nominated for the media, or None."""
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    for dtls in transports:
        connection = getattr(getattr(dtls, "transport", None), "_connection", None)
        nominated = getattr(connection, "_nominated", None)
        if not isinstance(nominated, dict) or not nominated:
            continue
        pair = nominated[min(nominated)]
        try:
            local, remote = pair.local_candidate.type, pair.remote_candidate.type
        except AttributeError:
            return None
        if local in CANDIDATE_TYPES and remote in CANDIDATE_TYPES:
            return local, remote
    return None
