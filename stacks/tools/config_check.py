"""`voicefleet config check | explain NAME | diff --stack NAME`: the dispatcher's configuration as a stack
would deploy it, read offline.

    uv run python -m stacks.tools.config_check check --stack aws-prod
    uv run python -m stacks.tools.config_check explain MAX_CONCURRENT_SESSIONS --stack aws-prod
    uv run python -m stacks.tools.config_check diff --stack gcp-dev --config maxConcurrentSessions=50

The environment is the one `python -m stacks.plan NAME` registers for the dispatcher's container(s)
(stacks/tools/dispatcher_env.py), read with the dispatcher's own check, explanation and diff
(dispatcher/serving/config_report.py). A secret the stack keeps as a Pulumi secret is set but never
shown. A source names the stack key a value came from (stacks/config/dispatcher_keys.py). A stack file
the program refuses (a wrong value, a missing provider setting, an unknown key, a secret given with
--config) is one line and exit 1. `--config-stdin` reads the --config items from stdin, as
`voicefleet config` passes them (never on a command line). What a run of the program gave is kept for
the same inputs (stacks/tools/config_cache.py): the next check of an unchanged stack reads it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace

from botchannel.contract import CHANNEL_URL_VARIABLE
from dispatcher.reserve.policy import DEFAULT_COLD_START_SECONDS
from dispatcher.serving.config_command import CONFIG_STDIN, overrides_apart
from dispatcher.serving.config_report import diff, explain, faults
from dispatcher.settings.derived import DEFAULT_PROFILE
from dispatcher.settings.sources import Resolved, SourceError, resolve
from dispatcher.settings.typos import nearest, spelt_as_key
from stacks.config import bot_session_caps, ceiling_notes
from stacks.config.channel import cold_starts
from stacks.config.derived import PROFILE_NAMES, SIZE_NAMES, derived
from stacks.config.dispatcher_keys import ENTRIES, SECRET, keys_of
from stacks.config.reader import SettingsError
from stacks.config.settings import NAMESPACE
from stacks.config.stack_keys import PROVIDER_CREDENTIALS
from stacks.tools import config_cache, env_keys
from stacks.tools.dispatcher_env import DispatcherEnv, dispatcher_envs
from stacks.tools.paths import stack_document, stack_file, stack_names
from stacks.tools.plan import first_up_notes, placeholders, stack_config
from stacks.tools.stack_faults import every_refusal, full_key
from stacks.tools.stack_key_explain import explain_key, stack_key
from voicefleet_settings.names import by_name


def stack_envs(stack: str, overrides: Mapping[str, str] | None = None, *, cached: bool = True,
               without: frozenset[str] = frozenset()) -> list[DispatcherEnv]:
    """What `python -m stacks.plan STACK` registers for the dispatcher, with `--config` values as the plan
    takes them (raises the program's SettingsError on a configuration it refuses). `cached`: an answer
    kept for the very same inputs (stacks/tools/config_cache.py) stands for a run of the program.
    `without`: keys (full names) left out, as if unset (stacks/tools/stack_faults.py)."""
    overrides = dict(overrides or {})
    config, secret_keys = stack_config(stack)
    for key, value in overrides.items():
        full = _full(key)
        # A secret of the stack file, one the plan stands in for, or one the dispatcher takes by reference
        # (stacks/config/dispatcher_keys.py): refused before the program runs (it refuses the others itself).
        # A provider's credential too (aws:secretKey): the program never reads it, so nothing else would.
        if (full in secret_keys or full in PROVIDER_CREDENTIALS
                or full in {_full(entry.key) for entry in ENTRIES if entry.how == SECRET}):
            named = full if full in PROVIDER_CREDENTIALS else key.split(":", 1)[-1]
            raise SettingsError(f"{full} is a secret, and --config values are plain text: set it with "
                                f"`pulumi config set --secret {named} -s {stack}`")
        config[full] = value
        secret_keys = [name for name in secret_keys if name != full]
    config = {key: value for key, value in config.items() if key not in without}
    secret_keys = [name for name in secret_keys if name not in without]
    # A run with keys left out answers another question than the stack file asks: an entry named by the
    # stack and its --config alone would serve it to the next plain check, the refused key passed.
    cached = cached and not without
    if cached and (kept := config_cache.load(stack, config, overrides)) is not None:
        return kept
    from stacks.tools.lazy_sdk import lazy_sdks
    from stacks.tools.mocks import run_program  # the cloud's SDK and Pulumi's engine: only for a run

    read = config_cache.files_read(stack, config)  # before the run: an edit during it is no input of its answer
    with lazy_sdks():  # the SDK's modules the program uses, not its whole service packages (0.5 s of CPU)
        registrations = run_program(config, secret_keys, stack=stack).registrations
    envs = dispatcher_envs(registrations)
    if cached:
        config_cache.store(stack, config, overrides, envs, registrations, read=read)
    return envs


def _config(stack: str, overrides: Mapping[str, str]) -> dict[str, str]:
    """The stack file's keys (full names) and values as text, `--config` over them."""
    document = stack_document(stack)
    config = {key: str(value) for key, value in (document.get("config") or {}).items()}
    config.update({key if ":" in key else f"{NAMESPACE}:{key}": value for key, value in overrides.items()})
    return config


_full = full_key


def pending_keys(stack: str, config: Mapping[str, str]) -> frozenset[str]:
    """The keys the plan stands in for (placeholders) that neither the stack file nor --config sets."""
    held = {key.split(":", 1)[-1] for key in config}
    return frozenset({placeholder.key for placeholder in placeholders(stack)} - held)


def source(setting: str, stack: str, config: Mapping[str, str], given: frozenset[str] = frozenset(),
           pending: frozenset[str] | None = None) -> str:
    """Where a stack's value of `setting` comes from: the stack key that sets it (in the file, or `given`
    by --config), its size or profile, the keys it falls back to, the key's default, or the program
    itself (a resource's id, a fixed value). `pending`: pending_keys, read once for every setting."""
    cloud = config.get(f"{NAMESPACE}:cloud", "")
    size, profile = config.get(f"{NAMESPACE}:size"), config.get(f"{NAMESPACE}:profile")
    found = derived(size if size in SIZE_NAMES else None, profile if profile in PROFILE_NAMES else None, cloud=cloud)
    # What derived a key: `size: large`, `profile: prod`, `cloud: k8s` (stacks/config/derived.py).
    by = {"size": f"size: {size}", "profile": f"profile: {profile or DEFAULT_PROFILE}", "cloud": f"cloud: {cloud}"}
    pending = pending_keys(stack, config) if pending is None else pending
    shown: list[str] = []

    def where(key: str) -> str:  # a key `--config` gave is not the stack file's
        return "--config" if _full(key) in given else stack_file(stack).name

    def named(key: str) -> str:  # a key the value is computed from, and where its value is
        if key in pending:
            return f"stack key {key} (not in {stack_file(stack).name} yet: a placeholder, as the plan's)"
        if _full(key) in config:
            return f"stack key {key} ({where(key)})"
        if key in found:
            return f"stack key {key} (derived from {by[found[key][1]]})"
        return f"stack key {key}'s default (Pulumi.yaml)"

    for entry in keys_of(setting, cloud):
        full = _full(entry.key)
        if entry.key in pending:
            shown.append(f"stack key {entry.key} (not in {stack_file(stack).name} yet: a placeholder, as the plan's)")
        elif full in config:
            shown.append(f"stack key {entry.key} ({where(entry.key)})")
        elif entry.key in found:
            shown.append(f"derived from {by[found[entry.key][1]]} (stack key {entry.key})")  # which key it set
        elif entry.key == "profile" and profile:
            shown.append(f"stack key profile ({where('profile')})")
        elif entry.how == SECRET:
            continue  # a secret no one set: what the program made (a store's own key), not a default
        elif entry.fallback:  # at its default, the program derives the value from other keys
            shown.append("derived from " + " and ".join(named(key) for key in entry.fallback))
        else:
            shown.append(f"stack key {entry.key}'s default (Pulumi.yaml)")
        if entry.inputs:
            shown[-1] += ", with " + ", ".join(named(key) for key in entry.inputs)
    return "; ".join(dict.fromkeys(shown)) or "the stack program (from its resources, not a stack key)"


def resolved_for(env: DispatcherEnv, stack: str, config: Mapping[str, str],
                 given: frozenset[str] = frozenset()) -> Resolved:
    """The container's environment as the dispatcher resolves it, each stack-set value's source named."""
    resolved = resolve(env.with_stand_ins())
    sources = dict(resolved.sources)
    pending = pending_keys(stack, config)  # the stack file's header, parsed once, not once a setting
    for name in [*env.plain, *env.masked]:
        sources[name] = source(name, stack, config, given, pending)
    return replace(resolved, sources=sources)


def cold_note(env: DispatcherEnv, config: Mapping[str, str]) -> str | None:
    """A dispatcher without the bot channel has no warm reserve, whatever its reserve settings say:
    said beside the check's verdict, with the way to turn it on (stacks/config/channel.py)."""
    if CHANNEL_URL_VARIABLE in env.plain:
        return None
    machines = env.plain.get("MACHINES", "")
    seconds = float(env.plain.get("RESERVE_COLD_START_SECONDS") or DEFAULT_COLD_START_SECONDS.get(machines, 0))
    plain_http = config.get(f"{NAMESPACE}:allowPlainHttp", "").lower() == "true"
    return "note: " + cold_starts(machines, seconds, plain_http=plain_http)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """What the program says for `pulumi preview` (its warnings) is the plan's to show, not this check's:
    a handler of its own keeps Python's last-resort one from printing it."""
    root, handler = logging.getLogger(), logging.NullHandler()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


def run(command: Sequence[str], stack: str, overrides: Mapping[str, str]) -> int:
    checking = command[0] == "check"
    try:
        with _quiet():
            if checking:  # every refusal of the stack file, and each value its first `up` still needs
                refused, envs = every_refusal(lambda without: stack_envs(stack, overrides, without=without),
                                              _config(stack, overrides))
                pending = first_up_notes(stack, overrides, done="checked") + env_keys.hints(os.environ, stack)
            else:
                refused, envs, pending = [], stack_envs(stack, overrides), []
    except SettingsError as exc:  # the program's own refusal (or a stack file that is none): one line
        print(f"{stack}: {' '.join(str(exc).split())}")
        return 1
    if refused:
        print("\n".join(f"{stack}: {line}" for line in dict.fromkeys([*refused, *pending])))
        return 1
    if not envs:
        print(f"{stack} runs no dispatcher (a front door or shared stack): nothing to check")
        return 0
    config = _config(stack, overrides)
    status = 0
    for env in envs:
        prefix = f"{env.resource}: " if len(envs) > 1 else ""
        try:
            resolved = resolved_for(env, stack, config, frozenset(_full(key) for key in overrides))
        except SourceError as exc:
            print(f"{stack}: {exc}")
            return 1
        if checking:
            found = [prefix + line for line in env.masked_lines(faults(resolved))] + pending
            print("\n".join(f"{stack}: {line}" for line in found) if found else
                  f"{stack}: {prefix}configuration good (stack size {config.get(f'{NAMESPACE}:size', 'unset')}, "
                  f"profile {resolved.profile}, "
                  f"{len(env.plain) + len(env.masked)} settings, {len(env.masked)} of them secrets)")
            if note := cold_note(env, config):  # not a fault: a choice, said with its cost
                print(f"{stack}: {prefix}{note}")
            status = status or (1 if found else 0)
            # A session longer than the bot's realtime vendor allows: said, not refused (as the plan does).
            for line in bot_session_caps.stack_notes(config):
                print(f"{stack}: note: {line}")
            # The provider's quotas against the sessions (stacks/config/ceiling_notes.py): said, not refused.
            for line in ceiling_notes.stack_notes(config) if env is envs[0] else []:
                print(f"{stack}: {line}")
        elif command[0] == "explain":
            print("\n".join(prefix + line for line in env.masked_lines(explain(command[1], resolved))))
        else:
            print("\n".join(prefix + line for line in [*([compared_with(stack)] if env is envs[0] else []),
                                                       *env.masked_lines(diff(resolved))]))
    return status


def compared_with(stack: str) -> str:
    """What `diff --stack` compares: offline there is no deployed state to read, so the dispatcher's own
    defaults; where to look for what is deployed (docs/pulumi.md, "Comparing with what is deployed")."""
    return (f"# {stack}: the settings that differ from the dispatcher's defaults, as this stack file makes them; "
            f"not what is deployed, which only its state holds: `pulumi preview --diff -s {stack}` (the CLI and the "
            f"stack's backend), or offline `python -m stacks.plan {stack} --diff <the commit you deployed from>`")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voicefleet config", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="+", metavar="check | explain NAME | diff")
    parser.add_argument("--stack", required=True, help="a stack of stacks/ (reads stacks/Pulumi.<name>.yaml)")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="as if `pulumi config set KEY VALUE` had set it")
    parser.add_argument(CONFIG_STDIN, action="store_true",
                        help="read more KEY=VALUE items from stdin, a JSON list (no value on a command line)")
    args = parser.parse_args(argv)
    if args.config_stdin:
        try:
            _, given = overrides_apart([CONFIG_STDIN], sys.stdin)
        except ValueError as exc:
            parser.exit(2, f"{exc}\n")
        args.config += given
    command = list(args.command)
    if not (command == ["check"] or command == ["diff"] or (len(command) == 2 and command[0] == "explain")):
        parser.exit(2, "usage: voicefleet config check | explain NAME | diff --stack NAME\n")
    if bad := [number for number, item in enumerate(args.config, 1) if "=" not in item]:
        # not echoed: an item without `=` may be a value typed where its key belonged
        parser.exit(2, f"--config wants KEY=VALUE: item {', '.join(map(str, bad))} has no '='\n")
    if args.stack not in stack_names():
        parser.exit(2, f"{args.stack} is no stack; known: {', '.join(stack_names())}\n")
    # A stack key (`maxConcurrentSessions`) where no setting has its name: the key explained, and the settings
    # it writes named (a name of both, `recording`, stays the setting's, whose source names the key).
    if (command[0] == "explain" and command[1].strip().upper() not in by_name()
            and (key := stack_key(command[1].strip())) is not None):
        overrides = dict(item.split("=", 1) for item in args.config)
        print("\n".join(explain_key(key, args.stack, overrides)))
        return 0
    if command[0] == "explain":
        command[1] = command[1].strip().upper()
        if command[1] not in by_name():
            meant = nearest(command[1]) or spelt_as_key(command[1])
            parser.exit(2, f"{command[1]} is no setting" + (f": did you mean {meant}?" if meant else "") + "\n")
    return run(command, args.stack, dict(item.split("=", 1) for item in args.config))


if __name__ == "__main__":
    sys.exit(main())
