"""Defer third-party modules that Pipecat and aiortc import but a voice session never uses.

Start-up time is a product figure (docs/bot.md). These modules are imported at module level by
our dependencies yet only used on paths this bot does not take in a WebRTC session:

- `aiohttp`: Pipecat's `utils.file_resolver` (fetching URLs put into an LLM context) and the
  network services; the bot's own HTTP is bot/http_server.py. ~15% of start-up CPU.
- `dns.*` (dnspython): aioice's mDNS responder, used only for `.local` ICE candidates.
- `PIL.Image`: the output transport's video frames (this bot sends audio only).

Each is loaded with `importlib.util.LazyLoader`: the module object exists at once and its code
runs on first attribute access, so a path that does need it still works, just paying the import
then. `materialized()` tells which were actually needed (the webrtc mode logs it at exit).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

DEFERRED_MODULES = (
    "aiohttp",
    "PIL.Image",
    "dns.message",
    "dns.zone",
    "dns.rdataset",
    "dns.rdata",
    "dns.flags",
    "dns.name",
    "dns.rdatatype",
)


class _DeferringFinder(importlib.abc.MetaPathFinder):
    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def defer_unused_imports(names: Sequence[str] = DEFERRED_MODULES) -> None:
    """Installs the deferral; call before importing Pipecat. Already-imported modules stay as they are."""
    if not any(isinstance(finder, _DeferringFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _DeferringFinder(names))


def materialized(names: Sequence[str] = DEFERRED_MODULES) -> list[str]:
    """The deferred modules whose code has run (something used them)."""
    return [name for name in names if name in sys.modules and type(sys.modules[name]).__name__ != "_LazyModule"]
