"""Launch values handed to the bot in a file rather than its environment: an agent-sandbox pod's.

In the `agent-sandbox` mode the session's values (its id, transport, channel credential and URL)
reach the pod as its annotation `voicefleet.io/bot-env` (JSON), which the pod's template mounts with a
downward API volume; `BOT_ENV_FILE` names that file. Read once at start, its values join the process's
environment as if they had been set there (the environment's own win). Unset, or empty: nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping

ENV_FILE_VARIABLE = "BOT_ENV_FILE"


class LaunchFileError(ValueError):
    pass


def file_values(env: Mapping[str, str]) -> dict[str, str]:
    path = env.get(ENV_FILE_VARIABLE, "").strip()
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read().strip()
    except OSError as exc:
        raise LaunchFileError(f"{ENV_FILE_VARIABLE}={path} cannot be read ({type(exc).__name__}): mount the pod's "
                              "voicefleet.io/bot-env annotation there (a downward API volume)") from None
    if not text:
        return {}
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise LaunchFileError(f"{ENV_FILE_VARIABLE}={path} does not hold a JSON object of strings")
    return {str(k): v for k, v in values.items()}


def merge_launch_file(env: MutableMapping[str, str]) -> None:
    """`env` with the file's values added where `env` has none."""
    for key, value in file_values(env).items():
        env.setdefault(key, value)
