"""Keep credentials out of logs that third-party libraries write.

With LOG_LEVEL=debug, the websockets library that uvicorn serves the bot channel and the carriers'
sockets with logs every handshake header ("< authorization: Bearer …", "< x-twilio-signature: …")
and every frame (the tail of an `assign` is the caller's `body`) to `uvicorn.error`: those records
are dropped (botchannel/wire_logs.py). Should another library log a header as `name: value`, the
value of a credential header is blanked, wherever the record comes from.

uvicorn also logs every request's path (`uvicorn.access`, and `uvicorn.error` for WebSockets), and
some paths carry a secret: the Daily dial-in webhook's `/phone/daily/dialin/{secret}` (reusable), Exotel's
Connect applet URL `/phone/exotel/connect/{secret}` (reusable),
a carrier's `/ws/{carrier}/{token}` and `/ws/generic/{service}/{token}` (one-time, but its payload
is the client's `body`), the same token as `?token=` (Pipecat's WebSocket client's form), and a
keyless `/ws/generic/...?body=`, and the local folder store's signed download and part paths
(`/recordings/files/{token}`, `/bots/recordings/parts/{token}`), and the MAC in a carrier's callback
URLs (`/phone/{carrier}/calls/{session}/{mac}/…`, `/phone/{carrier}/recordings/{session}/{mac}`,
`/phone/{twilio,telnyx,plivo}/warm/{session}/{transfer}/{mac}/…`). Those
segments are masked; a query parameter by its decoded name, as the dispatcher reads it (`?%74oken=` is
`?token=`, and logged as sent). The exported spans are masked by these same rules
(dispatcher/observability/span_redaction.py).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

from botchannel.wire_logs import keep_wire_out_of
from dispatcher.observability.log_text import shown

ESCAPED_LIMIT = 4096  # escaped, not cut short: a provider's message is the operator's clue
SECRET_HEADERS = frozenset({
    "authorization", "cookie", "proxy-authorization",
    # The carriers' request signatures: Twilio's over an upgrade's URL is valid for every call.
    "x-twilio-signature", "x-plivo-signature-v3", "x-plivo-signature-v3-nonce", "x-plivo-signature-v2",
    "telnyx-signature-ed25519",
})
MASK = "[redacted]"
_SEGMENT = r"[^/?#\s\"]+"  # one path segment, as far as a log line shows it
SECRET_PATHS = (  # (prefix kept)(secret masked); every route with a secret in its path or query
    re.compile(r"(/phone/daily/dialin/)[^?#\s\"]+"),
    # Exotel's Connect applet URL: its segment is derived from the Exotel credential (exotel_connect.py).
    re.compile(r"(/phone/exotel/connect/)[^?#\s\"]+"),
    re.compile(rf"(/ws/generic/{_SEGMENT}/)[^?#\s\"]+"),
    re.compile(rf"(/ws/(?!generic/){_SEGMENT}/)[^?#\s\"]+"),
    # The folder store's signed paths (dispatcher/artifacts/signed_paths.py: FILE_PATH, PART_PATH): each
    # token reads an object or writes a part for as long as it lives (a download's up to a week).
    re.compile(r"(/recordings/files/)[^?#\s\"]+"),
    re.compile(r"(/bots/recordings/parts/)[^?#\s\"]+"),
    # A placed call's and a carrier recording's callback URL: its MAC of the session stands in for the
    # carrier's signature where that does not cover the URL (Telnyx's); the session id is kept.
    re.compile(rf"(/phone/{_SEGMENT}/(?:calls|recordings)/{_SEGMENT}/)[^/?#\s\"]+"),
    # A warm transfer's, of its transfer.
    re.compile(rf"(/phone/(?:twilio|telnyx|plivo)/warm/{_SEGMENT}/{_SEGMENT}/)[^/?#\s\"]+"),
)
SECRET_QUERY_NAMES = frozenset({"body", "token"})
_QUERY_PARAMETER = re.compile(r"([?&])([^=&#\s\"]*)=([^&#\s\"]*)")


class RedactCredentialHeaders(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() in SECRET_HEADERS:
            record.args = (args[0], MASK)
        return True


def mask_secret_paths(text: str) -> str:
    for pattern in SECRET_PATHS:
        text = pattern.sub(rf"\g<1>{MASK}", text)
    return _QUERY_PARAMETER.sub(_masked_parameter, text)


def _masked_parameter(found: re.Match[str]) -> str:
    separator, name, value = found.groups()
    if unquote_plus(name) in SECRET_QUERY_NAMES and value:
        value = MASK
    return f"{separator}{name}={value}"


class RedactSecretPaths(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            # An exception's text too (an HTTP client's names its URL): the escaping filter turns it into text later.
            record.args = tuple(mask_secret_paths(a) if isinstance(a, str)
                                else mask_secret_paths(str(a)) if isinstance(a, BaseException) else a
                                for a in record.args)
        elif isinstance(record.msg, str) and not record.args:
            record.msg = mask_secret_paths(record.msg)
        if record.exc_info and record.exc_info[0] is not None:  # an exception's own message may name the path
            record.exc_text = mask_secret_paths(record.exc_text or _PLAIN.formatException(record.exc_info))
        return True


_PLAIN = logging.Formatter()


class EscapeControlCharacters(logging.Filter):
    """Every value formatted into a record is one line (dispatcher/observability/log_text.py): a value that
    someone else chose (a bot's hello, a provider's message) cannot forge a record below it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(shown(a, ESCAPED_LIMIT) if isinstance(a, str | BaseException) else a
                                for a in record.args)
        return True


def install() -> None:
    keep_wire_out_of("uvicorn.error")  # where uvicorn's websockets protocol writes
    for handler in logging.getLogger().handlers:
        # Every logger's lines, not only the server's: the dispatcher's own may name a request's path
        # (an unexpected error's line), and a relayed dial-in carries its secret in it.
        if not any(isinstance(f, RedactSecretPaths) for f in handler.filters):
            handler.addFilter(RedactSecretPaths())
        if not any(isinstance(f, EscapeControlCharacters) for f in handler.filters):
            handler.addFilter(EscapeControlCharacters())
    for name in ("uvicorn.error", "websockets", "websockets.server", "websockets.client"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentialHeaders) for f in logger.filters):
            logger.addFilter(RedactCredentialHeaders())
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecretPaths) for f in logger.filters):
            logger.addFilter(RedactSecretPaths())
