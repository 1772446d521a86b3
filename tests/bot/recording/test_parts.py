"""The WAV stream cut into upload parts (bot/recording/parts.py)."""

from __future__ import annotations

from bot.recording.parts import PartCutter


def test_full_parts_are_cut_at_the_part_size_and_the_rest_goes_last() -> None:
    cutter = PartCutter(100, b"H" * 44)
    assert cutter.write(b"a" * 50) == []
    filled = cutter.write(b"b" * 60)
    assert [(p.number, len(p.data), p.full) for p in filled] == [(1, 100, True)]
    assert bytes(filled[0].data) == b"H" * 44 + b"a" * 50 + b"b" * 6
    last = cutter.last()
    assert last is not None and (last.number, len(last.data), last.full) == (2, 54, True)
    assert cutter.total == 154 and cutter.parts == 2


def test_a_checkpoint_uploads_the_part_still_filling_only_when_it_changed() -> None:
    cutter = PartCutter(100, b"H" * 4)
    cutter.write(b"a" * 10)
    first = cutter.checkpoint()
    assert first is not None and (first.number, bytes(first.data), first.full) == (1, b"HHHH" + b"a" * 10, False)
    assert cutter.checkpoint() is None
    cutter.write(b"b")
    again = cutter.checkpoint()
    assert again is not None and again.number == 1 and len(again.data) == 15


def test_an_upload_of_the_part_filling_keeps_its_bytes_as_the_part_goes_on() -> None:
    cutter = PartCutter(100, b"H" * 4)
    cutter.write(b"a" * 10)
    checkpoint = cutter.checkpoint()
    assert checkpoint is not None
    filled = cutter.write(b"b" * 100)  # fills part 1 and starts part 2
    assert bytes(checkpoint.data) == b"HHHH" + b"a" * 10  # the view an upload holds is never written again
    assert bytes(filled[0].data) == b"HHHH" + b"a" * 10 + b"b" * 86
    assert bytes(cutter.last().data) == b"b" * 14  # type: ignore[union-attr]
