"""Every Redis command the dispatcher sends, read out of its code rather than listed by hand.

Three places send commands, and each is read as it is written:
- redis-py calls on a client or a pub/sub object (`self._store.redis.set(...)`, `store.redis.time`
  handed over uncalled, `pubsub.subscribe(...)`, `redis.register_script(...)`): each method is
  followed into redis-py's own source down to the command it sends (`execute_command("SET", ...)`,
  a script's `evalsha`/`script_load`, `scan_iter`'s `scan`);
- a command named outright (`pack_command("PUBLISH", ...)`, `execute_command(...)`);
- the commands inside every Lua script (`redis.call('TIME')`, `redis.pcall(...)`).
A command whose name is not a literal cannot be read, and is an error here rather than a gap.

Names come out as ACL rules name them: lower case, a container's subcommand after `|`
(`script|load`). What redis-py sends as it connects is not in the dispatcher's code: `HANDSHAKE`
names it, tests/infra/aws/test_store_access.py records a connection's first commands to hold it to
that, and the recorded traffic of a real call (tests/replicas/test_phone_calls.py) is checked
against the whole.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap
from collections import defaultdict
from functools import cache
from pathlib import Path

import redis.commands.core
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "dispatcher"
# What a connection of dispatcher/store/client.py `connect` sends besides the dispatcher's own
# commands: HELLO (RESP3, redis-py's default, signing in with the user and password: always
# allowed), and PING for redis-py's health check (`health_check_interval`). No SELECT (database 0),
# no CLIENT SETINFO (`driver_info=None`), no CLIENT MAINT_NOTIFICATIONS (switched off).
HANDSHAKE = frozenset({"hello", "ping"})

_LITERAL_SENDERS = {"execute_command", "pack_command", "send_command"}
_SCRIPT_CALL = re.compile(r"redis\.p?call\(")
_SCRIPT_COMMAND = re.compile(r"redis\.p?call\(\s*(['\"])(?P<name>[A-Za-z_|]+)\1")
# redis-py sends a command by naming it to `execute_command` (or a helper of its own, as
# `evalsha` does through `self._evalsha("EVALSHA", …)`).
_SENT = re.compile(r"(?:execute_command|send_command|self\._\w+)\(\s*\"(?P<name>[A-Z][A-Z_ |-]*)\"")
_CALLED = re.compile(r"\b(?:self|client)\.(?P<name>\w+)\(")
_SCRIPT_CLASS = re.compile(r"\b(?P<name>\w*Script)\(")
# A receiver whose methods are redis-py's: a client (`….redis`, `self._redis`, `redis`, a client
# made by `self._client()`) or a pub/sub object.
_CLIENT = re.compile(r"(^|\.)_?redis$|_client\(\)$")
_PUBSUB = re.compile(r"(^|\.)_?pubsub(\(.*\))?$")


class UnreadableCommand(Exception):
    """A command is sent whose name the code does not spell out."""


def acl_name(command: str) -> str:
    return command.strip().lower().replace(" ", "|")


@cache
def _method_commands(owner: type, name: str) -> frozenset[str]:
    """The commands `owner.name` sends, following redis-py's source through the methods it calls."""
    return frozenset(_follow(owner, name, set()))


def _follow(owner: type, name: str, seen: set[tuple[type, str]]) -> set[str]:
    if (owner, name) in seen or not callable(getattr(owner, name, None)):
        return set()
    seen.add((owner, name))
    source = textwrap.dedent(inspect.getsource(getattr(owner, name)))
    found = {acl_name(m["name"]) for m in _SENT.finditer(source)}
    for match in _CALLED.finditer(source):
        target = Redis if "client." in match.group(0) else owner
        found |= _follow(target, match["name"], seen)
    for match in _SCRIPT_CLASS.finditer(source):  # register_script → the script object's call
        script = getattr(redis.commands.core, match["name"], None)
        if isinstance(script, type):
            found |= _follow(script, "__call__", seen)
    return found


def _receiver(node: ast.Attribute) -> type | None:
    text = ast.unparse(node.value)
    if _PUBSUB.search(text) and hasattr(PubSub, node.attr):
        return PubSub
    if _CLIENT.search(text) and hasattr(Redis, node.attr):
        return Redis
    return None


def commands_in(source: str, where: str) -> dict[str, set[str]]:
    """Command → the places (`where:line`) in `source` that send it."""
    return {command: set(places) for command, places in _commands_in(source, where)}


@cache  # a test asks for the dispatcher's commands after each call: each source is parsed once a process
def _commands_in(source: str, where: str) -> tuple[tuple[str, frozenset[str]], ...]:
    found: dict[str, set[str]] = defaultdict(set)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            calls = len(_SCRIPT_CALL.findall(node.value))
            named = [m["name"] for m in _SCRIPT_COMMAND.finditer(node.value)]
            if calls != len(named):
                raise UnreadableCommand(f"{where}:{node.lineno}: a script calls a command it does not name")
            for name in named:
                found[acl_name(name)].add(f"{where}:{node.lineno} (Lua)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                node.func.attr in _LITERAL_SENDERS):
            first = node.args[0] if node.args else None
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                raise UnreadableCommand(f"{where}:{node.lineno}: {node.func.attr} with a command that is not a literal")
            found[acl_name(first.value)].add(f"{where}:{node.lineno}")
        elif isinstance(node, ast.Attribute) and (owner := _receiver(node)) is not None:
            for command in _method_commands(owner, node.attr):
                found[command].add(f"{where}:{node.lineno} ({node.attr})")
    return tuple((command, frozenset(places)) for command, places in found.items())


def dispatcher_commands(root: Path = SOURCES) -> dict[str, set[str]]:
    """Every command the dispatcher's code sends, with where; the connection's own included."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in sorted(root.rglob("*.py")):
        for command, places in commands_in(path.read_text(), str(path.relative_to(ROOT))).items():
            found[command] |= places
    for command in HANDSHAKE:
        found[command].add("redis-py's connection (dispatcher/store/client.py connect)")
    return dict(found)


def dispatcher_scripts(root: Path = SOURCES) -> dict[str, str]:
    """Every Lua script the dispatcher registers (`register_script(<module constant>)`), by where:
    the text redis-py hashes into the SHA1 it sends with EVALSHA."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "register_script"):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            argument = node.args[0] if node.args else None
            if not isinstance(argument, ast.Name):
                raise UnreadableCommand(f"{where}: a script that is not a module constant")
            module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
            text = getattr(module, argument.id)
            if not isinstance(text, str):
                raise UnreadableCommand(f"{where}: {argument.id} is not a script's text")
            found[where] = text
    return found
