"""A stack's cells keys (`cloudRunCells`, `gceCells`, `ecsCells`): each read with its dispatcher setting's own
parser (dispatcher/machines/cell_list.py and the provider's cell_settings.py), so the stack refuses
what the dispatcher would (a bad project id, a cell listed twice, more than 50), naming the key, and
written back for the dispatcher as the JSON it reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, TypeVar

from dispatcher.settings import SettingsError
from stacks.config.reader import Reader

Cell = TypeVar("Cell")
Parse = Callable[[str], tuple[Cell, ...]]


def none_listed(text: str | None) -> bool:
    """Unset, or Pulumi.yaml's own `default: []`."""
    return text is None or not text.strip() or text.strip() == "[]"


def read(cfg: Reader, key: str, parse: Parse[Cell], *, runtime: str, bot_runtime: str,
         otherwise: str) -> tuple[Cell, ...]:
    """The cells `key` lists, for botRuntime `runtime` only (`otherwise`: what another runtime does instead)."""
    raw = cfg.plain(key)
    if none_listed(raw):
        return ()
    assert raw is not None
    if bot_runtime != runtime:
        raise cfg.fail(key, f"is for botRuntime {runtime} only (this stack's is {bot_runtime}): {otherwise}; "
                            f"`pulumi config rm {cfg.command_key(key)}`")
    try:
        return parse(raw)
    except SettingsError as exc:
        raise cfg.fail(key, f"is not a list of cells the dispatcher takes: {exc}") from None


def from_file(text: str, parse: Parse[Cell]) -> tuple[Cell, ...] | None:
    """The cells a stack file's value lists (() none); None: a list the dispatcher would refuse (the check names it)."""
    if none_listed(text):
        return ()
    try:
        return parse(text)
    except SettingsError:
        return None


def setting(listed: Sequence[Any]) -> str:
    """The dispatcher's setting: the cells as JSON, each with the fields it set ("": none)."""
    if not listed:
        return ""
    return json.dumps([{k: v for k, v in asdict(cell).items() if v is not None} for cell in listed],
                      separators=(",", ":"))
