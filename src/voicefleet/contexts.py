"""Contexts: several deployments, each a name for a dispatcher's address and where its key comes from
(an environment variable, or a command that prints it, such as a secret store's), as kubectl's
contexts. The key itself is never written: the file holds the variable's name or the command.

The file is `contexts.json` in VOICEFLEET_CONFIG_DIR, else $XDG_CONFIG_HOME/voicefleet, else
~/.config/voicefleet. A context is taken whole or not at all, so that a key only goes to the address
it came with: --url or VOICEFLEET_URL set, the environment's keys go to that address and the context
is not read; else the context's address gets the context's key, never VOICEFLEET_ADMIN_KEY or
VOICEFLEET_API_KEY."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicefleet.errors import UsageLine
from voicefleet.settings import ADMIN_KEY_VARIABLE, API_KEY_VARIABLE, URL_VARIABLE

CONFIG_DIR_VARIABLE = "VOICEFLEET_CONFIG_DIR"
CONTEXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
KEY_COMMAND_SECONDS = 20.0  # a secret store's CLI may ask a person to unlock it
ROLES = {"admin": ADMIN_KEY_VARIABLE, "client": API_KEY_VARIABLE}


@dataclass(frozen=True)
class Context:
    name: str
    url: str
    key_env: str | None = None  # the variable that holds the key
    key_command: str | None = None  # or the command that prints it
    role: str = "admin"  # which key it is: the admin's (VOICEFLEET_ADMIN_KEY) or a client's

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in {"url": self.url, "key_env": self.key_env, "key_command": self.key_command,
                                  "role": self.role}.items() if v is not None}


def config_file(env: Mapping[str, str]) -> Path:
    base = env.get(CONFIG_DIR_VARIABLE) or ""
    if not base:
        xdg = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        base = str(Path(xdg) / "voicefleet")
    return Path(base) / "contexts.json"


def load(env: Mapping[str, str]) -> tuple[str | None, dict[str, Context]]:
    """The context in use (None: none) and every context, by name."""
    path = config_file(env)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None, {}
    except (OSError, ValueError) as error:
        raise UsageLine(f"{path} is not a contexts file ({error}): move it away and add the contexts again") from None
    found = {}
    for name, fields in (raw.get("contexts") or {}).items() if isinstance(raw, dict) else ():
        if isinstance(fields, dict) and isinstance(fields.get("url"), str):
            found[name] = Context(name, fields["url"], fields.get("key_env"), fields.get("key_command"),
                                  fields.get("role", "admin"))
    current = raw.get("current") if isinstance(raw, dict) else None
    return (current if current in found else None), found


def save(env: Mapping[str, str], current: str | None, contexts: Mapping[str, Context]) -> Path:
    """Written whole to a file beside it, then moved over it: a reader never sees half a file."""
    path = config_file(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"current": current, "contexts": {n: c.as_json() for n, c in sorted(contexts.items())}},
                      indent=2) + "\n"
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)
    return path


def with_context(env: Mapping[str, str], name: str | None = None) -> tuple[dict[str, str], Context | None]:
    """`env` as the context in use (or `name`, chosen for one command) makes it: its address, with its
    own key and no other, and that context (None: none). A key the environment holds is another
    deployment's as far as the context can tell, and is not sent there."""
    current, contexts = load(env)
    if name is not None and name not in contexts:
        known = ", ".join(sorted(contexts)) or "none yet"
        raise UsageLine(f"--context {name}: no such context (known: {known}); `voicefleet context list` shows them")
    current = name or current
    if current is None:
        return dict(env), None
    context = contexts[current]
    chosen = {name: value for name, value in env.items() if name not in ROLES.values()}
    chosen[URL_VARIABLE] = context.url
    key = key_of(context, env)
    if key is not None:
        chosen[ROLES.get(context.role, ADMIN_KEY_VARIABLE)] = key
    return chosen, context


def key_of(context: Context, env: Mapping[str, str]) -> str | None:
    """The context's key, read from its variable or printed by its command; None for a keyless one."""
    if context.key_env is not None:
        key = (env.get(context.key_env) or "").strip()
        if not key:
            raise UsageLine(f"context {context.name} takes its key from {context.key_env}, which is not set: "
                            f"export {context.key_env}, or `voicefleet context add {context.name} --url "
                            f"{context.url} --key-env OTHER_VARIABLE`")
        return key
    if context.key_command is not None:
        return _printed_key(context)
    return None


def _printed_key(context: Context) -> str:
    command = context.key_command or ""
    try:  # no shell: the command is split as a shell would, and run as it is
        answer = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=KEY_COMMAND_SECONDS,
                                check=False)
    except (OSError, ValueError, subprocess.TimeoutExpired) as error:
        raise UsageLine(f"context {context.name}: its key command `{command}` did not run ({type(error).__name__}): "
                        "fix it with `voicefleet context add` again") from None
    key = answer.stdout.strip()
    if answer.returncode != 0 or not key:
        said = f"exit {answer.returncode}" if answer.returncode != 0 else "it printed nothing"
        raise UsageLine(f"context {context.name}: its key command `{command}` gave no key ({said}): run it "
                        "yourself to see why")
    if len(key.splitlines()) > 1:  # a password manager's `show`: the key, then its notes
        raise UsageLine(f"context {context.name}: its key command printed more than one line: make it print "
                        "the key alone")
    return key
