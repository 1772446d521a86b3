"""One default verifying TLS context per test process, shared by every httpx client it makes.

httpx builds a new `ssl.SSLContext` for each client, loading certifi's CA bundle: about 40 ms of CPU
(`httpx.get` to a closed port, measured here), and every `httpx.get`/`httpx.post` is a client of its
own. The tests poll with such calls every 50 ms while a dispatcher starts or a session ends, so a
waiting test burnt close to a core of the 2 the suite has, most of it loading the same certificates
again. The context httpx would build for the default `verify=True` is the same each time (certifi's
bundle, or SSL_CERT_FILE/SSL_CERT_DIR, read as httpx reads them), so it is built once per such
setting and shared; any other `verify` (False, a path, a context of the caller's) goes to httpx as
before. Only the name httpx's transports call is wrapped: `httpx.create_ssl_context` itself, which a
caller may then change, still returns a context of its own. No client in this repository asks for
HTTP/2, the one case in which httpcore sets ALPN on the context it is given.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

import httpx._transports.default as transports

_built_by_httpx = transports.create_ssl_context
_shared: dict[tuple[bool, str | None, str | None], ssl.SSLContext] = {}


def _create_ssl_context(verify: Any = True, cert: Any = None, trust_env: bool = True) -> ssl.SSLContext:
    if verify is not True or cert is not None:
        return _built_by_httpx(verify=verify, cert=cert, trust_env=trust_env)
    key = (trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    context = _shared.get(key)
    if context is None:
        context = _shared[key] = _built_by_httpx(verify=verify, cert=cert, trust_env=trust_env)
    return context


def share_default_verify_context() -> None:
    transports.create_ssl_context = _create_ssl_context  # type: ignore[assignment]
