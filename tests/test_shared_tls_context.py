"""The test process's httpx clients share one default verifying context (tests/support/shared_tls_context.py)."""

from __future__ import annotations

import ssl

import httpx

from tests.support.shared_tls_context import share_default_verify_context


def _context(client: httpx.Client) -> ssl.SSLContext:
    return client._transport._pool._ssl_context  # type: ignore[attr-defined]


def test_default_clients_share_one_verifying_context_and_others_keep_their_own(monkeypatch) -> None:
    share_default_verify_context()
    with httpx.Client() as first, httpx.Client() as second, httpx.Client(verify=False) as unverified:
        assert _context(first) is _context(second), "two default clients built the CA bundle's context twice"
        assert _context(first).verify_mode == ssl.CERT_REQUIRED and _context(first).check_hostname
        assert _context(unverified) is not _context(first) and _context(unverified).verify_mode == ssl.CERT_NONE
    assert httpx.create_ssl_context() is not httpx.create_ssl_context(), "httpx's own function must stay unshared"
    monkeypatch.setenv("SSL_CERT_FILE", ssl.get_default_verify_paths().openssl_cafile)
    with httpx.Client() as from_env, httpx.Client() as default:
        assert _context(from_env) is _context(default)
    monkeypatch.delenv("SSL_CERT_FILE")
    with httpx.Client() as again:
        assert _context(again) is not _context(from_env), "a context built from SSL_CERT_FILE served without it"
