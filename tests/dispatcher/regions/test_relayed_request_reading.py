"""A request relayed to the region that holds its session is read there as it was read here: a
repeated header by its first value (the one this region checked), and `wait` however it is
spelled on the wire, so a relayed long-poll holds a wait slot here as it would at its home."""

from __future__ import annotations

import pytest

from dispatcher.api.region_relay import request_headers, waits_on_a_session


def test_a_repeated_header_is_relayed_by_its_first_value() -> None:
    scope = {"headers": [(b"authorization", b"Bearer first"), (b"authorization", b"Bearer second"),
                         (b"idempotency-key", b"a"), (b"idempotency-key", b"b")]}
    assert request_headers(scope) == {"authorization": "Bearer first", "idempotency-key": "a"}


@pytest.mark.parametrize(("method", "path", "query", "waits"), [
    ("GET", "/sessions/s", b"wait=started", True),
    ("GET", "/sessions/s", b"w%61it=started", True),  # Starlette decodes the name: the route long-polls
    ("GET", "/sessions/s", b"timeout=5&wait=started", True),
    ("GET", "/sessions/s", b"wait=x&wait=started", True),  # the last of several, as the route reads it
    ("GET", "/sessions/s", b"wait=forever", False),  # refused 422 at once: no wait
    ("GET", "/sessions/s", b"nowait=1", False),
    ("GET", "/sessions/s", b"", False),
    ("DELETE", "/sessions/s", b"wait=started", False),
    ("GET", "/sessions/s/events", b"", True),
])  # fmt: skip
def test_a_wait_is_known_however_its_name_is_spelled(method: str, path: str, query: bytes, waits: bool) -> None:
    assert waits_on_a_session({"method": method, "path": path, "query_string": query}) is waits
