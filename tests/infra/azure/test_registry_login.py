"""The registry token exchange against a local stand-in of ACR's /oauth2/exchange."""

from __future__ import annotations

import json
import urllib.parse
from http.server import BaseHTTPRequestHandler

import pytest

from stacks.azure import registry_login
from tests.support.threaded_http import serving


def stand_in(statuses: list[int], seen: list[dict[str, str]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the handler's method name
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            seen.append({"path": self.path, **dict(urllib.parse.parse_qsl(body))})
            status = statuses.pop(0) if statuses else 200
            answer = json.dumps({"refresh_token": "acr-refresh-token"} if status == 200 else {"errors": []}).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def test_the_entra_token_is_exchanged_for_a_registry_token() -> None:
    seen: list[dict[str, str]] = []
    with serving(stand_in([], seen)) as url:
        server = url.removeprefix("http://")
        token = registry_login.exchange(server, "entra-token", "tenant", scheme="http")
    assert token == "acr-refresh-token"
    assert seen == [{"path": "/oauth2/exchange", "grant_type": "access_token", "service": "127.0.0.1",
                     "tenant": "tenant", "access_token": "entra-token"}]


def test_a_server_error_is_retried_a_bounded_number_of_times() -> None:
    seen: list[dict[str, str]] = []
    with serving(stand_in([503, 503, 503, 503], seen)) as url, pytest.raises(registry_login.ExchangeError) as caught:
        registry_login.exchange(url.removeprefix("http://"), "entra-token", "tenant", scheme="http", pause_seconds=0)
    assert len(seen) == registry_login.ATTEMPTS and "HTTP 503" in str(caught.value)


def test_a_refusal_is_not_retried_and_names_the_role_to_grant() -> None:
    seen: list[dict[str, str]] = []
    with serving(stand_in([401], seen)) as url, pytest.raises(registry_login.ExchangeError) as caught:
        registry_login.exchange(url.removeprefix("http://"), "entra-token", "tenant", scheme="http", pause_seconds=0)
    assert len(seen) == 1 and "HTTP 401" in str(caught.value) and "AcrPush" in str(caught.value)
    assert "entra-token" not in str(caught.value)


def test_no_token_means_no_request() -> None:
    assert registry_login.exchange("unreachable.invalid", "", "tenant") == ""
