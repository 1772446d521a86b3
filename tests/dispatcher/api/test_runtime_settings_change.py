"""An admin's runtime change once written stands (dispatcher/api/runtime_settings.py): a store that
stops answering right after the write costs the audit line's place in the store (it goes to the log),
never a 503 saying nothing changed, which an admin would answer by making a second key."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest

from dispatcher.api.runtime_keys import RuntimeKeys
from dispatcher.api.runtime_settings import RuntimeSettings
from dispatcher.store.runtime_book import MemoryRuntimeBook
from dispatcher.store.unavailable import StoreUnavailable


class TrailDown(MemoryRuntimeBook):
    """The record is written, then the store goes away before the audit line."""

    async def note(self, line: Mapping[str, Any]) -> None:
        raise StoreUnavailable("connection refused")


async def test_a_written_change_stands_when_its_audit_line_is_not_taken(caplog: pytest.LogCaptureFixture) -> None:
    book = TrailDown()
    runtime = RuntimeSettings(book, RuntimeKeys())

    def change(record: dict[str, Any]) -> list[dict[str, Any]]:
        record["capacity"] = {"sessions": 7}
        return [{"by": "admin-1", "action": "capacity.set", "name": "sessions", "old": None, "new": 7}]

    with caplog.at_level(logging.ERROR, logger="dispatcher.runtime"):
        written = await runtime.change(change)
    assert written["capacity"] == {"sessions": 7}
    assert runtime.capacity == {"sessions": 7}  # applied here too
    assert (await book.read() or {})["capacity"] == {"sessions": 7}
    assert "capacity.set" in caplog.text and "admin-1" in caplog.text
