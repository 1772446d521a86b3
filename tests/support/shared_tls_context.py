"""One default verifying TLS context per test process, shared by every httpx client it makes.

httpx builds a context per client, reading the CA bundle (~40 ms of CPU), and each `httpx.get` in the
tests' 50 ms polls is a client: a waiting test spent most of a core on it (docs/testing.md, "What the test
process burnt on its own"). A default `verify=True` context is the same each time, so it is built once per
SSL_CERT_FILE/SSL_CERT_DIR; any other `verify` goes to httpx as before, and `httpx.create_ssl_context`, whose
result a caller may change, is left alone. No client here asks for HTTP/2 (httpcore would set ALPN on it).
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
