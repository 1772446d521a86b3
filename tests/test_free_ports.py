"""The tests' port picks (tests/support/ports.py): a number handed out is not handed out again while its test may
not have bound it yet, in this process or another."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ports


class Picks:
    """The generator's numbers, in order: the same number offered twice, as a random pick may."""

    def __init__(self, numbers: list[int]) -> None:
        self._numbers: Iterator[int] = iter(numbers)

    def randrange(self, low: int, high: int) -> int:
        return next(self._numbers)


def test_a_block_handed_out_but_not_yet_bound_is_not_handed_out_again(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "HANDED_OUT", tmp_path / "handed-out")
    low = ports.LOWEST_UNPRIVILEGED + 5000
    monkeypatch.setattr(ports, "_PICK", Picks([low, low + 10, low + 100, low + 3, low + 200]))
    assert ports.free_port_pair(20) == low
    assert ports.free_port_pair(20) == low + 100  # low + 10 lies in the first block, unbound yet
    assert ports.free_port() == low + 200  # so does low + 3
    handed = {int(line.split("@")[0]) for line in (tmp_path / "handed-out").read_text().split()}
    assert handed == {*range(low, low + 20), *range(low + 100, low + 120), low + 200}


def test_a_number_handed_out_long_ago_may_be_handed_out_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "handed-out"
    low = ports.LOWEST_UNPRIVILEGED + 6000
    record.write_text(f"{low}@1\n")  # handed out in 1970
    monkeypatch.setattr(ports, "HANDED_OUT", record)
    monkeypatch.setattr(ports, "_PICK", Picks([low]))
    assert ports.free_port() == low
