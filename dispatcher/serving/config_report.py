"""What `voicefleet config check | explain NAME | diff` says of the configuration the dispatcher would read
from this environment (dispatcher/serving/config_command.py): every fault it would refuse at start-up,
a setting explained, the settings that differ from their defaults; secrets and URLs' passwords masked.
The stacks' tool (stacks/tools/config_check.py) says the same of a stack's dispatcher environment.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from dispatcher.serving import fly_ceiling
from dispatcher.settings import SettingsError
from dispatcher.settings.derived import PROFILES, SIZES, profile_problems
from dispatcher.settings.sources import Resolved, SourceError, resolve
from dispatcher.settings.typos import deprecated, misspelt, nearest, spelt_as_key
from voicefleet_settings.model import Setting
from voicefleet_settings.names import by_name, meaning
from voicefleet_settings.read import setting_choice, setting_int, setting_text

USAGE = "usage: voicefleet config check | explain NAME | diff [--stack NAME]"
WIDTH = 100  # a meaning is a paragraph: wrapped for a terminal
# A local BOT_FILE's realtime vendor caps: read by the stacks' tool (the same words as the plan's), in a
# process of its own, as the dispatcher imports nothing of the stacks. It parses files: seconds at most.
CAPS_TOOL = "stacks.tools.session_caps"
CAPS_TIMEOUT_SECONDS = 60


def faults(resolved: Resolved) -> list[str]:
    """Everything the dispatcher would refuse at start-up (but the cluster's and the regions' answers,
    which only a call could give), and every misspelt or old name."""
    from dispatcher.factory import configuration_problems  # the dispatcher's own parsers, every provider's

    env = resolved.env
    found = misspelt(env) + deprecated(env)
    for logging_setting in ("LOG_LEVEL", "LOG_FORMAT"):  # read by the dispatcher before any other
        try:
            setting_choice(env, logging_setting)
        except SettingsError as exc:
            found.append(str(exc))
    return found + profile_problems(env, resolved.profile) + configuration_problems(env)


def shown(setting: Setting, value: str) -> str:
    """A value as it may be printed: a secret's is never, nor a URL's password or query (an endpoint's
    basic auth, a hook's token): `https://user:***@host/path?***`."""
    if setting.secret:
        return "(a secret, set)"
    return ",".join(_masked_url(part) for part in value.split(","))


def _masked_url(value: str) -> str:
    parts = urlsplit(value.strip()) if "://" in value else None
    if parts is None or not (parts.password or parts.query):
        return value
    host = parts.netloc.rsplit("@", 1)[-1]
    user = f"{parts.username}:***@" if parts.password else (f"{parts.username}@" if parts.username else "")
    return urlunsplit((parts.scheme, user + host, parts.path, "***" if parts.query else "", ""))


def explain(name: str, resolved: Resolved) -> list[str]:
    """What a setting is and where its value comes from."""
    setting = by_name()[name]
    said = meaning(setting).replace(chr(92) + "|", "|") or "(see docs/configuration.md)"
    lines = [textwrap.fill(f"{name}: {said}", width=WIDTH, subsequent_indent="  ", break_on_hyphens=False),
             f"  section: {setting.section}; type: {setting.kind}; default: {setting.shown_default}"]
    derived_by = [f"{size} {values[setting.name]}" for size, values in SIZES.items() if setting.name in values]
    derived_by += [f"{profile} {values[setting.name]}" for profile, values in PROFILES.items()
                   if setting.name in values]
    if derived_by:
        lines.append(f"  derived by VOICEFLEET_SIZE / VOICEFLEET_PROFILE: {', '.join(derived_by)}")
    if setting.name != name:
        lines.append(f"  an old name of {setting.name}: rename it")
    if name in resolved.env:
        lines.append(f"  value: {shown(setting, resolved.env[name])} ({origin(resolved.source(name))})")
    else:
        lines.append("  value: unset (its default applies)")
    return lines


def origin(source: str) -> str:
    """A source as explain says it: `from the environment`, `from the size large`; a source that is a
    phrase already (a stack's `derived from size: large`, `the stack program (…)`) as it is."""
    return source if source.startswith(("derived from ", "the ")) else f"from the {source}"


def diff(resolved: Resolved) -> list[str]:
    """The settings whose value is not their default, secrets masked."""
    known = by_name()
    lines = []
    for name in sorted(resolved.env):
        setting = known.get(name)
        if setting is None or resolved.env[name] == setting.default:
            continue
        lines.append(f"{name}={shown(setting, resolved.env[name])}  ({resolved.source(name)})")
    return lines


def session_cap_notes(env: Mapping[str, str]) -> list[str]:
    """The caps of BOT_FILE's realtime vendor that MAX_SESSION_SECONDS outlasts and Pipecat does not carry a
    call past, one note each; none without a BOT_FILE, outside a checkout that has the stacks, or on a fault."""
    bot_file = setting_text(env, "BOT_FILE")
    if not bot_file or importlib.util.find_spec("stacks") is None:
        return []
    command = [sys.executable, "-m", CAPS_TOOL, bot_file, str(setting_int(env, "MAX_SESSION_SECONDS"))]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CAPS_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        return []
    return done.stdout.splitlines() if done.returncode == 0 else []


def report(argv: list[str], environ: Mapping[str, str]) -> int:
    """`check`, `explain NAME` or `diff` of `environ`, printed; the command's exit code."""
    try:
        resolved = resolve(environ)
    except SourceError as exc:
        print(exc, file=sys.stderr)
        return 1
    if argv == ["check"]:
        found = faults(resolved)
        for line in found:
            print(line)
        if not found:
            print(f"configuration good (profile {resolved.profile}, size {resolved.size or 'unset'})")
            for line in session_cap_notes(resolved.env):  # said, not refused: a bot may renew its session
                print(f"note: {line}")
            for line in fly_ceiling.notes(resolved.env):  # said, not refused: calls may be shorter
                print(line)
        return 1 if found else 0
    if len(argv) == 2 and argv[0] == "explain":
        name = argv[1].strip().upper()
        if name not in by_name():
            meant = nearest(name) or spelt_as_key(argv[1].strip())
            print(f"{name} is no setting" + (f": did you mean {meant}?" if meant else ""), file=sys.stderr)
            return 2
        print("\n".join(explain(name, resolved)))
        return 0
    if argv == ["diff"]:
        for line in diff(resolved):
            print(line)
        return 0
    print(USAGE, file=sys.stderr)
    return 2
