"""What a call that got no answer says: the host it was sent to and why it got none.

`GET /: HttpError` told an operator neither which service was down nor whether it refused, timed
out or could not be found. A failure names the target (scheme, host, port and path: never the
query string or credentials in the URL, which may carry secrets) and its cause in words, with
aiohttp's exception type for a search. Whether it never connected (`never_connected`) says
whether anything can have been sent: a caller may then send it elsewhere. Whether the dispatcher's own
descriptors or memory ran out (`exhausted`) says the far side was never asked: nothing is known of it.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from urllib.parse import urlsplit


def shown_target(url: str) -> str:
    """`https://api.daily.co/v1/rooms`: the URL without its query, fragment or user information."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # a port that is no number: the host alone says enough
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else parts.path


def cause(exc: BaseException) -> str:
    """`connection refused (ClientConnectorError)`, `timed out (TimeoutError)`, …"""
    return f"{_words(exc)} ({type(exc).__name__})"


def never_connected(exc: BaseException) -> bool:
    """Whether a call provably sent nothing: no connection was made (refused, a name that does not resolve,
    a TLS handshake refused or failed, none made within the connect timeout) and no earlier request of the
    call went out (the client's `sent`: a PUT sent again after a dropped connection, a redirect followed).
    A timeout past the connection, or a reset, may have delivered it. `exc`: the client's HttpError, or
    aiohttp's exception it was raised from."""
    import aiohttp  # loaded already: the failed call used it

    if getattr(exc, "sent", False):
        return False
    return any(isinstance(e, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
               for e in (exc, exc.__cause__))


# The dispatcher's own resources, spent: a socket (or a file) it could not open says nothing of the far side.
_EXHAUSTED = {errno.EMFILE: "too many open files", errno.ENFILE: "the system's file table is full",
              errno.ENOBUFS: "no socket buffer space", errno.ENOMEM: "out of memory"}


def exhausted(exc: BaseException) -> str | None:
    """Why the dispatcher itself could not make the call (EMFILE, ENFILE, ENOBUFS, ENOMEM: its descriptors or
    memory spent), in words; None for any other failure. `exc`: an OSError, the client's HttpError or aiohttp's
    exception it was raised from (a ClientConnectorError carries its errno). It says nothing of what went out
    before: a read that failed so, or a redirect that could not connect, may have been served
    (`never_connected` says whether anything was sent)."""
    for error in (exc, exc.__cause__):
        if isinstance(error, OSError) and error.errno in _EXHAUSTED:
            return _EXHAUSTED[error.errno]
    return None


def _words(exc: BaseException) -> str:
    # Imported here: a failed call has loaded aiohttp already, and the settings that show a target
    # (dispatcher/models/settings.py, read by `voicefleet config check`) need no HTTP client.
    import aiohttp

    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # a TimeoutError too, but one that sent nothing
        return "no connection within the connect timeout"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return "no answer within the timeout"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "its name does not resolve"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "its TLS certificate or handshake was refused"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, ConnectionRefusedError):
            return "connection refused: nothing listens there"
        if isinstance(os_error, ssl.SSLError):
            return "its TLS handshake failed"
        return f"cannot connect: {os_error.strerror or type(os_error).__name__}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer broke off"
    if isinstance(exc, aiohttp.ClientOSError):
        return f"connection failed: {exc.strerror or 'reset'}"
    return "no answer"
