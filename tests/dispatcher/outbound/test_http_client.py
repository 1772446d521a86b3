"""The provider HTTP client honours the standard proxy variables, read once per client."""

from __future__ import annotations

import pytest

from dispatcher.outbound.http_client import proxy_for


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_a_provider_url_goes_through_the_proxy_its_scheme_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert proxy_for("https://api.machines.dev/v1/apps/bots") == "http://proxy.internal:3128"
    assert proxy_for("http://127.0.0.1:9000/v1") is None  # no HTTP_PROXY: plain http goes direct


def test_no_proxy_exempts_its_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "api.daily.co,.googleapis.com")
    assert proxy_for("https://api.daily.co/v1") is None
    assert proxy_for("https://compute.googleapis.com/compute/v1") is None
    assert proxy_for("https://api.machines.dev") == "http://proxy.internal:3128"


def test_without_proxy_variables_calls_go_direct() -> None:
    assert proxy_for("https://api.daily.co/v1") is None
