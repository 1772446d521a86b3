"""A worker's answer to a request its PJSIP cannot parse, which PJSIP itself drops without a word (sip_transport.c:
one header that fails its parser drops the whole request). Behind the front, such an INVITE held the worker's slot
until the front gave up waiting for a first answer, and the front's own rules (sipedge/front_unparsable.py) name
only the causes found so far: PJSIP parses some thirty headers (a Session-Expires, an Event, a Route, a Via's ttl,
a Contact's q, a port past 65535...), each with causes of its own. PJSIP tells the application of each request it
drops (pjsip_tpmgr_set_drop_data_cb, which the pjsua2 wheel exports though PJSUA2 does not wrap it): the worker then
answers it 400 itself, by RFC 3261 8.2.6's copy of the request's Via, From, To, Call-ID and CSeq, so the front
frees the slot at once and the trunk hears why. Only behind the front, and only to the front's own address: the
request's Via names it, and a stranger's Via would make the worker send its answers wherever a sender asked."""

from __future__ import annotations

import ctypes
import re
import secrets
import socket

INVALID_MESSAGE = 171020  # pjsip/include/pjsip/sip_errno.h's PJSIP_EINVALIDMSG: a syntax error, the request dropped
ANSWER = b"SIP/2.0 400 Bad Request"
_COMPACT = {b"v": b"via", b"f": b"from", b"t": b"to", b"i": b"call-id"}
_COPIED = (b"from", b"to", b"call-id", b"cseq")
_NAMES = {b"from": b"From", b"to": b"To", b"call-id": b"Call-ID", b"cseq": b"CSeq"}
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_TAG = re.compile(rb";[ \t]*tag[ \t]*=", re.IGNORECASE)


class _Dropped(ctypes.Structure):
    """pjsip/include/pjsip/sip_transport.h's pjsip_tp_dropped_data (2.15.1)."""

    _fields_ = [("tp", ctypes.c_void_p), ("data", ctypes.c_void_p), ("len", ctypes.c_size_t),
                ("status", ctypes.c_int)]


_ON_DROPPED = ctypes.CFUNCTYPE(None, ctypes.POINTER(_Dropped))


def bad_request(packet: bytes) -> bytes | None:
    """The 400 answering `packet`, a request PJSIP could not parse; None for a response, an ACK (never answered), a
    request without the lines an answer copies, or one shorter than its answer."""
    lines = _unfolded(_HEAD_END.split(packet.lstrip(), maxsplit=1)[0])
    if not _answerable(lines[0]):
        return None
    vias: list[bytes] = []
    copied: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        key = name.strip().lower()
        key = _COMPACT.get(key, key)
        if not colon:
            continue
        if key == b"via":
            vias.append(b"Via: " + value.strip())
        elif key in _COPIED and key not in copied:
            copied[key] = value.strip()
    if not vias or len(copied) < len(_COPIED):
        return None
    if _TAG.search(copied[b"to"]) is None:
        copied[b"to"] += b";tag=" + secrets.token_hex(8).encode()
    reply = b"\r\n".join([ANSWER, *vias, *(_NAMES[key] + b": " + copied[key] for key in _COPIED),
                          b"Content-Length: 0", b"", b""])
    # The front relays the 400 to the request's source, which a spoofer names: never more bytes than it sent (a
    # request of compact names and bare line feeds would double), so the edge amplifies nothing. A real request
    # (its request line, Max-Forwards, the header PJSIP failed on, the front's own headers, often a body) is larger.
    return reply if len(reply) <= len(packet) else None


def _answerable(start: bytes) -> bool:
    """Whether a message of this first line is a request other than an ACK, as PJSIP reads it (sip_parser.c: "SIP"
    in any case, then "/" or white space, is a response; any white space ends a method) and so might Kamailio."""
    if start[:3].upper() == b"SIP" and start[3:4] in (b"/", b" ", b"\t"):
        return False
    method = start.split(None, 1)[:1]
    return bool(method) and method[0].upper() != b"ACK"


def _unfolded(head: bytes) -> list[bytes]:
    """`head`'s lines, a folded line (one starting with white space) joined to the one before."""
    lines: list[bytes] = []
    for line in head.split(b"\n"):
        line = line.removesuffix(b"\r")
        if lines and line[:1] in (b" ", b"\t"):
            lines[-1] += b" " + line.strip()
        else:
            lines.append(line)
    return lines


class DroppedAnswers:
    """From its making on, each request this process's PJSIP drops unparsed is answered 400 to `front` ("host:port");
    made once PJSUA is initialised, and kept as long as PJSIP is (PJSIP holds its callback)."""

    def __init__(self, front: str) -> None:
        host, port = front.rsplit(":", 1)
        self._target = (host.strip("[]"), int(port))
        self._socket = socket.socket(socket.AF_INET6 if ":" in self._target[0] else socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._callback = _ON_DROPPED(self._on_dropped)
        from pjsua2 import _pjsua2  # the wheel's library, already loaded: PJSUA's own state

        library = ctypes.CDLL(_pjsua2.__file__)
        library.pjsua_get_pjsip_endpt.restype = ctypes.c_void_p
        library.pjsip_endpt_get_tpmgr.restype = ctypes.c_void_p
        library.pjsip_endpt_get_tpmgr.argtypes = [ctypes.c_void_p]
        library.pjsip_tpmgr_set_drop_data_cb.argtypes = [ctypes.c_void_p, _ON_DROPPED]
        library.pjsip_tpmgr_set_drop_data_cb(library.pjsip_endpt_get_tpmgr(library.pjsua_get_pjsip_endpt()),
                                             self._callback)

    def close(self) -> None:
        self._socket.close()

    def _on_dropped(self, dropped: ctypes._Pointer[_Dropped]) -> None:
        """On PJSIP's thread, within its poll: for each request it dropped, and each keep-alive it skipped too."""
        data = dropped.contents
        if data.status != INVALID_MESSAGE or not data.data or not data.len:
            return
        reply = bad_request(ctypes.string_at(data.data, data.len))
        if reply is None:
            return
        try:
            self._socket.sendto(reply, self._target)
        except OSError:  # a full buffer, or closed as the edge stops: the front's wait still bounds the request
            pass
