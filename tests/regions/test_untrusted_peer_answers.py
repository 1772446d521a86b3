"""Whoever answers at a peer's URL without the regions' secret is not believed: its redirect is not
followed, its oversized (or compressed) answer is refused unread, and its contradicting REGIONS
stops nobody; a relayed request forwards a repeated header's first value, as the API reads it, and
a region's own marks, never a caller's."""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from types import MappingProxyType
from urllib.parse import unquote

import pytest
from multidict import CIMultiDict

from dispatcher.regions.config import Regions
from dispatcher.regions.peers import Peers, conflicts_at_start, region_client
from dispatcher.regions.relay import RegionRelay
from dispatcher.regions.signing import SPILLED, RegionVerifier
from dispatcher.store.memory import LocalOnce
from tests.regions.support import SECRET
from tests.support.ports import free_port
from tests.support.threaded_http import serving


@functools.cache
def bomb() -> bytes:
    return gzip.compress(bytes(100 * 1024 * 1024), 9)  # ~100 KB on the wire, 100 MB once inflated


class Answers:
    def __init__(self) -> None:
        self.mode = "unsigned"
        self.seen: list[tuple[str, dict[str, str]]] = []


@contextmanager
def impostor() -> Iterator[tuple[str, Answers]]:
    """A server at "us"'s URL that holds no REGION_SECRET."""
    answers = Answers()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self._answer()

        def do_POST(self) -> None:  # noqa: N802
            self._answer()

        def _answer(self) -> None:
            answers.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            if self.path.startswith("/internal"):
                body = b"{}"
            elif answers.mode == "redirect":
                self.send_response(307)
                self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/internal")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            elif answers.mode == "bomb":
                body = bomb()
                self.send_response(200)
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            else:  # unsigned, and contradicting eu's URL
                body = json.dumps({"region": "us", "regions": "eu=http://127.0.0.1:1,us=http://x.invalid",
                                   "capacity": {"room": 5}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url, answers


def eu_with_us_at(url: str) -> Regions:
    return Regions("eu", MappingProxyType({"eu": f"http://127.0.0.1:{free_port()}", "us": url}), SECRET.encode())


@pytest.mark.parametrize("mode", ["unsigned", "redirect", "bomb"])
async def test_an_impostors_answer_is_not_believed(mode: str) -> None:
    if mode == "bomb":
        bomb()  # made before it is asked for: the peer's one-second deadline is not the test's to spend
    with impostor() as (url, answers):
        answers.mode = mode
        peers = Peers(eu_with_us_at(url), client=region_client(timeout=10))  # the deadline is not what it tests
        try:
            assert await peers.poll_all() == []  # no conflict taken from it
        finally:
            await peers.aclose()
        us = peers.by_name["us"]
        assert not us.reachable and us.capacity is None
        expected = {"unsigned": "without a region's signature", "redirect": "answered 307",
                    "bomb": "an answer over 65536 bytes"}[mode]
        assert expected in (us.problem or ""), us.problem
        assert not [path for path, _ in answers.seen if path.startswith("/internal")]  # no redirect followed


async def test_an_impostors_contradiction_does_not_stop_a_region_from_starting() -> None:
    """What `python -m dispatcher` asks its peers before it serves (dispatcher/__main__.py refuses to
    start on any conflict it returns), asked of an impostor whose unsigned answer contradicts eu's URL."""
    with impostor() as (url, answers):
        assert answers.mode == "unsigned"
        assert await conflicts_at_start(eu_with_us_at(url)) == []  # not refused on an unsigned word
        assert answers.seen, "the impostor was asked"


async def test_a_relay_forwards_a_repeated_headers_first_value() -> None:
    with impostor() as (url, answers):
        answers.mode = "unsigned"
        relay = RegionRelay(eu_with_us_at(url))
        try:
            answer = await relay.forward(
                "us", url, "GET", "/sessions/x", CIMultiDict([("Idempotency-Key", "k1"), ("idempotency-key", "k2"),
                                                               ("Authorization", "Bearer a"),
                                                               ("authorization", "Bearer b")]),
                b"", still_reachable=lambda: True, deadline_seconds=5)
            answer.close()
        finally:
            await relay.aclose()
        _, headers = answers.seen[-1]
        assert headers["idempotency-key"] == "k1" and headers["authorization"] == "Bearer a"


async def test_a_relay_passes_the_regions_marks_and_never_a_callers_own() -> None:
    with impostor() as (url, answers):
        relay = RegionRelay(eu_with_us_at(url))
        try:
            for marks in (None, {SPILLED: "eu at_capacity"}):
                answer = await relay.forward(
                    "us", url, "GET", "/sessions/x", {"Authorization": "Bearer a", SPILLED: "mars forged"}, b"",
                    still_reachable=lambda: True, deadline_seconds=5, marks=marks)
                answer.close()
        finally:
            await relay.aclose()
        assert [headers.get(SPILLED) for _, headers in answers.seen] == [None, "eu at_capacity"]


@pytest.mark.parametrize(("path", "query", "target"), [
    ("/sessions/x", "w%61it=started&after=%7e1", "/sessions/x?w%61it=started&after=%7e1"),  # the query as signed
    ("/sessions/x/a b", "wait=started", "/sessions/x/a%20b?wait=started"),  # the path read decoded, sent encoded
    ("/sessions/x/%41", "", "/sessions/x/%2541"),  # a `%` in the decoded path is the path's own
    ("/sessions/x/events?x", "y", "/sessions/x/events%3Fx?y"),  # a `?` too: else read as /events with x?y
    ("/sessions/x/../y/events", "", "/sessions/x/../y/events"),  # as the caller sent it, never resolved
])  # fmt: skip
async def test_a_relay_sends_the_path_and_query_it_signed(path: str, query: str, target: str) -> None:
    """The holding region checks the signature over the path and query as it reads them: one
    re-spelled on the way (`w%61it` as `wait`) would be refused as a forgery, the caller told 401;
    one split elsewhere (`/events?x` with `y` as `/events` with `x?y`) is the same signed text but
    another route than the one the arriving region read (an event stream it held no wait slot for)."""
    with impostor() as (url, answers):
        relay = RegionRelay(eu_with_us_at(url))
        try:
            answer = await relay.forward("us", url, "GET", path, {"Authorization": "Bearer a"}, b"",
                                         still_reachable=lambda: True, deadline_seconds=5, query=query)
            answer.close()
        finally:
            await relay.aclose()
        seen, headers = answers.seen[-1]
        assert seen == target
        raw_path, _, raw_query = seen.partition("?")
        assert (unquote(raw_path), raw_query) == (path, query)  # as the holding region reads it
        us = Regions("us", MappingProxyType({"eu": "http://127.0.0.1:1", "us": url}), SECRET.encode())
        as_read = unquote(raw_path) + (f"?{raw_query}" if raw_query else "")
        assert await RegionVerifier(us, LocalOnce()).sender("GET", as_read, headers, b"") == "eu"
