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

Each bot image leaves the other transport's packages out of the project's lock (the Daily image
aiortc's stack, the SmallWebRTC image daily-python), except those of a transport bot.py imports at
module level: that import runs in every image the bot runs in (pipecat-examples' bots import
`DailyParams` at the top and also offer `webrtc`), so the image keeps its package. The plan's size
prediction and the image build read the same answer (`leaves_out`, the build's
BOT_DAILY_LEAVES_OUT / BOT_WEBRTC_LEAVES_OUT).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from images.python_source import parse_file

# Pipecat's `create_transport` keys: the carriers' serializers run over its FastAPI WebSocket transport.
TRANSPORT_KEYS = {
    "daily": "daily", "webrtc": "webrtc", "websocket": "websocket",
    "twilio": "websocket", "telnyx": "websocket", "plivo": "websocket", "exotel": "websocket",
}  # fmt: skip
MODULE_PREFIXES = {
    "pipecat.transports.daily": "daily",
    "pipecat.transports.smallwebrtc": "webrtc",
    "pipecat.transports.websocket.fastapi": "websocket",
    # …or the transport's packages themselves, imported by the bot's own code.
    "daily": "daily",
    "aiortc": "webrtc", "av": "webrtc", "aioice": "webrtc", "pylibsrtp": "webrtc",
}  # fmt: skip
RUNNER_ARGUMENT_TYPES = {
    "DailyRunnerArguments": "daily", "SmallWebRTCRunnerArguments": "webrtc", "WebSocketRunnerArguments": "websocket",
}  # fmt: skip
# The package each transport imports, and the Pipecat extra that brings it.
TRANSPORT_PACKAGES = {
    "daily": ("daily-python", "daily"), "webrtc": ("aiortc", "webrtc"), "websocket": ("fastapi", "websocket"),
}  # fmt: skip


# Per bot image: the transport it does not carry, that transport's packages it leaves out of the
# project's lock, and the build argument of images/bot.Dockerfile that receives them.
IMAGE_LEAVES_OUT = {
    "bot": ("webrtc", ("aiortc", "av", "aioice", "pylibsrtp"), "BOT_DAILY_LEAVES_OUT"),
    "bot-webrtc": ("daily", ("daily-python",), "BOT_WEBRTC_LEAVES_OUT"),
}


@dataclass(frozen=True)
class BuiltTransport:
    name: str  # "daily", "webrtc" or "websocket"
    line: int  # where bot.py first shows it
    evidence: str  # what shows it: `"twilio"` key, `pipecat.transports.daily` import, …


def transports_built(bot_file: Path) -> tuple[BuiltTransport, ...]:
    """The transports `bot_file` builds, each at its first sign, in file order; () when it cannot
    be parsed (the image build's `--check` reports a broken file with Python's own message)."""
    tree = _tree(bot_file)
    if tree is None:
        return ()
    found: dict[str, BuiltTransport] = {}
    for node in ast.walk(tree):
        for name, evidence in _signs(node):
            line = getattr(node, "lineno", 0)
            if name not in found or line < found[name].line:
                found[name] = BuiltTransport(name, line, evidence)
    return tuple(sorted(found.values(), key=lambda built: built.line))


def _tree(bot_file: Path) -> ast.Module | None:
    """bot.py's syntax tree; None when it cannot be parsed (the image build's `--check` reports a
    broken file with Python's own message). Read within bounds (images/source_file.py)."""
    return parse_file(bot_file, bot_file.parent)


def _module_signs(node: ast.AST) -> list[tuple[str, str]]:
    """An import of a transport's own Pipecat module (which imports that transport's package)."""
    if isinstance(node, ast.ImportFrom) and node.module:
        return [(name, f"`{node.module}` import") for prefix, name in MODULE_PREFIXES.items()
                if node.module == prefix or node.module.startswith(prefix + ".")]
    if isinstance(node, ast.Import):
        return [(name, f"`{alias.name}` import") for alias in node.names for prefix, name in MODULE_PREFIXES.items()
                if alias.name == prefix or alias.name.startswith(prefix + ".")]
    return []


def _signs(node: ast.AST) -> list[tuple[str, str]]:
    if isinstance(node, ast.ImportFrom) and node.module:
        return _module_signs(node) + [(RUNNER_ARGUMENT_TYPES[alias.name], f"`{alias.name}` import")
                                      for alias in node.names if alias.name in RUNNER_ARGUMENT_TYPES]
    if isinstance(node, ast.Import):
        return _module_signs(node)
    if isinstance(node, ast.Dict) and node.keys:
        keys = [key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None
                for key in node.keys]
        if all(key in TRANSPORT_KEYS for key in keys):  # a dict of transport names: create_transport's
            return [(TRANSPORT_KEYS[key], f'"{key}" transport key') for key in keys if key is not None]
    return []


def imported_at_module_level(bot_file: Path) -> tuple[BuiltTransport, ...]:
    """The transports whose Pipecat module `bot_file` imports when it is imported (module level,
    also under a top-level `if`/`try`/`with`; not inside a function or class), each at its first import."""
    tree = _tree(bot_file)
    if tree is None:
        return ()
    found: dict[str, BuiltTransport] = {}
    statements: list[ast.stmt] = list(tree.body)
    while statements:
        node = statements.pop(0)
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name, evidence in _module_signs(node):
                if name not in found:
                    found[name] = BuiltTransport(name, node.lineno, evidence)
        elif isinstance(node, ast.If | ast.Try | ast.With):
            statements += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", []),
                           *(child for handler in getattr(node, "handlers", []) for child in handler.body)]
    return tuple(sorted(found.values(), key=lambda built: built.line))


def leaves_out(image: str, imported: tuple[BuiltTransport, ...]) -> tuple[str, ...]:
    """The packages `image` ("bot" or "bot-webrtc") leaves out of the project's lock: none when
    bot.py imports the transport they serve at module level (it could not import there otherwise)."""
    transport, packages, _ = IMAGE_LEAVES_OUT[image]
    return () if any(built.name == transport for built in imported) else packages


# Carriers whose calls a bot answers: its `create_transport` keys, or a serializer it builds by hand
# (`pipecat.serializers.telnyx`, as pipecat-examples' Telnyx and Vonage bots do).
CARRIER_KEYS = ("twilio", "telnyx", "plivo", "exotel")
SERIALIZERS = "pipecat.serializers."
NOT_CARRIERS = ("base_serializer", "protobuf", "rtvi_client")  # Pipecat's serializers that are no carrier's


def carriers_answered(bot_file: Path) -> tuple[str, ...]:
    """The carriers `bot_file` names (a `create_transport` key or a Pipecat serializer module), in
    file order; a serializer's module name for carriers voicefleet has no key of (`vonage`)."""
    tree = _tree(bot_file)
    if tree is None:
        return ()
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(SERIALIZERS):
            names = [node.module[len(SERIALIZERS):].split(".")[0]]
        elif isinstance(node, ast.Import):
            names = [alias.name[len(SERIALIZERS):].split(".")[0] for alias in node.names
                     if alias.name.startswith(SERIALIZERS)]
        elif isinstance(node, ast.Dict) and any(sign[0] == "websocket" for sign in _signs(node)):
            names = [key.value for key in node.keys if isinstance(key, ast.Constant) and key.value in CARRIER_KEYS]
        for name in names:
            if name not in NOT_CARRIERS and name not in found:
                found[name] = getattr(node, "lineno", 0)
    return tuple(sorted(found, key=lambda name: found[name]))
