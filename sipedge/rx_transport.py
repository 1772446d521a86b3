"""The transport PJSIP received a request on, which PJSUA2 hands over only as `SipRxData.pjRxData`,
a pointer to PJSIP's `pjsip_rx_data`. A request's own text (its top Via) is whatever the sender
wrote, so whether it came over TLS is read from PJSIP's record: `rdata->tp_info.transport`, the
second pointer of the struct, whose first field is the transport's name ("tlss…"/"tlsc…" for a TLS
connection, "udp…", "tcps…") in the wheel's PJSIP 2.15 (pjsip/sip_transport.h)."""

from __future__ import annotations

import ctypes

import pjsua2 as pj

_POINTER = ctypes.sizeof(ctypes.c_void_p)
_TLS_NAME = b"tls"


def came_over_tls(rdata: pj.SipRxData) -> bool:
    """Whether PJSIP received `rdata` on a TLS connection; on PJSIP's thread, inside its callback."""
    if rdata is None or rdata.pjRxData is None:
        return False
    received = int(rdata.pjRxData)
    transport = ctypes.c_void_p.from_address(received + _POINTER).value  # tp_info.transport, after tp_info.pool
    return transport is not None and ctypes.string_at(transport, len(_TLS_NAME)) == _TLS_NAME
