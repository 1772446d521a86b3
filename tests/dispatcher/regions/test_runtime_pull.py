"""A peer whose runtime record cannot be read (an answer no region signed, garbage, none in time) is
said once per record on `dispatcher.regions` and asked again a few seconds later, not at each of its
state answers (twice a second, each read up to RECORD_BYTES)."""

from __future__ import annotations

import logging
from types import MappingProxyType
from typing import Any

import pytest

from dispatcher.api import runtime_entries
from dispatcher.api.runtime_keys import RuntimeKeys
from dispatcher.api.runtime_settings import RuntimeSettings
from dispatcher.outbound.http_client import HttpResponse
from dispatcher.regions.config import Regions
from dispatcher.regions.peers import Peers
from dispatcher.regions.runtime import STATE_FIELD, UNREAD_RETRY_SECONDS, RegionalRuntime
from dispatcher.store.runtime_book import MemoryRuntimeBook


class Garbage:
    """Answers every request 200 with a body no region signed."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def request(self, method: str, url: str, **_: Any) -> HttpResponse:
        self.asked.append(f"{method} {url}")
        return HttpResponse(200, {}, b"\x00 not json")

    async def aclose(self) -> None:
        return None


async def test_a_record_that_cannot_be_read_is_warned_about_once_and_asked_again_after_a_pause(
        caplog: pytest.LogCaptureFixture) -> None:
    regions = Regions("eu", MappingProxyType({"eu": "http://127.0.0.1:1", "us": "http://127.0.0.1:2"}), b"k" * 32)
    peers, client, now = Peers(regions), Garbage(), [100.0]
    regional = RegionalRuntime(peers, RuntimeSettings(MemoryRuntimeBook(), RuntimeKeys(), region="eu"),
                               runtime_entries.checked, client=client,  # type: ignore[arg-type]
                               monotonic=lambda: now[0])
    us, answer = peers.by_name["us"], {STATE_FIELD: {"digest": "0" * 32}}
    with caplog.at_level(logging.WARNING, logger="dispatcher.regions"):
        for _ in range(4):  # two seconds of polls
            await regional.polled(us, answer)
            now[0] += 0.5
        assert len(client.asked) == 1
        now[0] += UNREAD_RETRY_SECONDS
        await regional.polled(us, answer)
    assert len(client.asked) == 2
    said = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
    assert len(said) == 1 and "answered 200" in said[0], said
