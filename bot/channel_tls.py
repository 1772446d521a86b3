"""How the bot trusts a `wss://` channel: the CA in BOT_CHANNEL_CA_FILE, else the system's; never unverified.

A Kubernetes stack signs the dispatcher's channel certificate with a private CA of its own and mounts
that CA's certificate (public) into every bot pod (docs/kubernetes.md, "The channel's TLS"). The
certificate is checked as any HTTPS client checks it: its chain up to that CA, its validity, and the
host the URL names among its names. The file is read at each dial, so a CA the cluster's ConfigMap
mount has replaced is the one the next dial trusts.

The same trust covers what the bot reaches at the channel's address: a call's media socket
(bot/carrier_socket.py) and the recording parts the dispatcher takes itself (bot/recording/uploader.py).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

from botchannel.contract import CA_FILE_VARIABLE
from voicefleet_settings.read import setting_text

__all__ = ["CA_FILE_VARIABLE", "UntrustedChannel", "ca_file", "channel_context", "untrusted", "verification_failure"]


class UntrustedChannel(Exception):
    """The dispatcher's certificate is not one BOT_CHANNEL_CA_FILE (or the system) vouches for."""


def ca_file(env: Mapping[str, str] | None = None) -> str | None:
    environ = os.environ if env is None else env
    return setting_text(environ, CA_FILE_VARIABLE) or None


def channel_context(url: str, ca: str | None) -> ssl.SSLContext | None:
    """The TLS context a `wss://` (or `https://`) URL at the channel's address is dialled with; None for a
    plain one. `ca`: BOT_CHANNEL_CA_FILE, the only CA trusted when set."""
    if urlsplit(url).scheme not in ("wss", "https"):
        return None
    try:
        return ssl.create_default_context(cafile=ca)  # CERT_REQUIRED and the host's name checked
    except (OSError, ssl.SSLError) as exc:
        raise UntrustedChannel(f"{CA_FILE_VARIABLE}={ca} is not a readable PEM CA certificate "
                               f"({getattr(exc, 'strerror', None) or exc}): mount the channel's CA there") from None


def untrusted(url: str, ca: str | None, exc: ssl.SSLCertVerificationError) -> str:
    """One line saying why a channel's certificate was refused, and the setting that decides it."""
    trusted = f"the CA in {CA_FILE_VARIABLE}={ca}" if ca else f"the system's CAs ({CA_FILE_VARIABLE} is unset)"
    return (f"the dispatcher's certificate at {url} is not trusted by {trusted}: {exc.verify_message or exc}; "
            f"set {CA_FILE_VARIABLE} to the CA that signed the channel's certificate")


def verification_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate check's failure inside a dial's exception, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
