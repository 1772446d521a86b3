"""Which transports a project's bot.py builds, read from its source (never run) at plan time.

A project needs the Pipecat extras of the transports *it* uses, no others: a Twilio bot builds
only Pipecat's FastAPI WebSocket transport and locks no daily-python, and that is a whole project.
What a bot builds is visible in its file, in the two shapes Pipecat's examples take:

- the runner's `create_transport(runner_args, {"daily": …, "webrtc": …, "twilio": …})`: the keys
  of a dict of transport names (every carrier's key is a WebSocket transport);
- a transport built by hand: an import from `pipecat.transports.daily`, `…smallwebrtc` or
  `…websocket.fastapi` (or the runner arguments type of one), at module level or inside `bot()`.

A file with neither (a bot whose transport comes from a module of its own) names nothing, and
nothing is required of it beyond what the host itself needs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

# Pipecat's `create_transport` keys: the carriers' serializers run over its FastAPI WebSocket transport.
TRANSPORT_KEYS = {
    "daily": "daily", "webrtc": "webrtc", "websocket": "websocket",
    "twilio": "websocket", "telnyx": "websocket", "plivo": "websocket", "exotel": "websocket",
}  # fmt: skip
MODULE_PREFIXES = {
    "pipecat.transports.daily": "daily",
    "pipecat.transports.smallwebrtc": "webrtc",
    "pipecat.transports.websocket.fastapi": "websocket",
}
RUNNER_ARGUMENT_TYPES = {
    "DailyRunnerArguments": "daily", "SmallWebRTCRunnerArguments": "webrtc", "WebSocketRunnerArguments": "websocket",
}  # fmt: skip
# The package each transport imports, and the Pipecat extra that brings it.
TRANSPORT_PACKAGES = {
    "daily": ("daily-python", "daily"), "webrtc": ("aiortc", "webrtc"), "websocket": ("fastapi", "websocket"),
}  # fmt: skip


@dataclass(frozen=True)
class BuiltTransport:
    name: str  # "daily", "webrtc" or "websocket"
    line: int  # where bot.py first shows it
    evidence: str  # what shows it: `"twilio"` key, `pipecat.transports.daily` import, …


def transports_built(bot_file: Path) -> tuple[BuiltTransport, ...]:
    """The transports `bot_file` builds, each at its first sign, in file order; () when it cannot
    be parsed (the image build's `--check` reports a broken file with Python's own message)."""
    try:
        tree = ast.parse(bot_file.read_text(encoding="utf-8"), filename=str(bot_file))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return ()
    found: dict[str, BuiltTransport] = {}
    for node in ast.walk(tree):
        for name, evidence in _signs(node):
            line = getattr(node, "lineno", 0)
            if name not in found or line < found[name].line:
                found[name] = BuiltTransport(name, line, evidence)
    return tuple(sorted(found.values(), key=lambda built: built.line))


def _signs(node: ast.AST) -> list[tuple[str, str]]:
    if isinstance(node, ast.ImportFrom) and node.module:
        signs = [(name, f"`{node.module}` import") for prefix, name in MODULE_PREFIXES.items()
                 if node.module == prefix or node.module.startswith(prefix + ".")]
        return signs + [(RUNNER_ARGUMENT_TYPES[alias.name], f"`{alias.name}` import") for alias in node.names
                        if alias.name in RUNNER_ARGUMENT_TYPES]
    if isinstance(node, ast.Import):
        return [(name, f"`{alias.name}` import") for alias in node.names for prefix, name in MODULE_PREFIXES.items()
                if alias.name == prefix or alias.name.startswith(prefix + ".")]
    if isinstance(node, ast.Dict) and node.keys:
        keys = [key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None
                for key in node.keys]
        if all(key in TRANSPORT_KEYS for key in keys):  # a dict of transport names: create_transport's
            return [(TRANSPORT_KEYS[key], f'"{key}" transport key') for key in keys if key is not None]
    return []
