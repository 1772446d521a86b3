"""The one table of entry shapes (bot/entry_shape_table.py) is read the same way by the bot host, in the
imported module, and by the deploy check, in the source: each shape is found by both, as the table names it,
and the host can call each."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bot.entry_shape_table import ENTRY_SHAPES, EntryShape
from bot.entry_shapes import known_entry
from images.bot_entry import bot_tree, known_shape


@pytest.mark.parametrize("shape", ENTRY_SHAPES, ids=lambda shape: shape.entry)
def test_the_host_and_the_deploy_check_find_each_shape_of_the_table(tmp_path: Path, shape: EntryShape) -> None:
    path = tmp_path / "bot.py"
    path.write_text(f"async def {shape.function}({', '.join(shape.parameters)}):\n    pass\n")
    spec = importlib.util.spec_from_file_location("shaped_bot", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entry = known_entry(module, path)
    assert entry is not None and (entry.name, entry.transport) == (shape.entry, shape.transport)
    assert known_shape(bot_tree(path)) == (shape.entry, shape.transport)


def test_each_refusal_names_the_shape_the_session_and_a_way_out() -> None:
    for shape in ENTRY_SHAPES:
        refusal = shape.refused("a phone call's (WebSocketRunnerArguments)")
        assert refusal.startswith(f"{shape.entry} ") and "a phone call's (WebSocketRunnerArguments)" in refusal
        assert "POST /start" in refusal and "$" not in refusal
