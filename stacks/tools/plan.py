"""Render a stack's resources offline, as text a reviewer can diff.

    uv run --project infra python -m stacks.plan aws-dev            # print the plan of stacks/Pulumi.aws-dev.yaml
    uv run --project infra python -m stacks.plan aws-dev --diff     # what changed against the committed snapshot
    uv run --project infra python -m stacks.plan aws-dev --write    # refresh tests/infra/snapshots/aws-dev.txt
    uv run --project infra python -m stacks.plan aws-dev --config botProject=../my-bot   # a value not yet set

Every run first applies the offline preflight (stacks/tools/preflight: the CLI's config checks, the
clouds' name and size rules, and the dispatcher's own start-up check of the environment the stack
gives it, stacks/tools/dispatcher_env.py) and exits 1 with one line per violation instead of a plan. What the
program says for `pulumi preview` to show (the bot image's predicted size and pull cost, warnings)
prints as notes on stderr.

The program runs under mocks (no CLI, plugins or credentials). Outputs that only the cloud knows
(ids, ARNs, digests) are mocked deterministically, so the text changes only when the program or
the stack's configuration does. Secret values print as [secret]; values the stack file does not
hold yet (its header's `pulumi config set` lines, the secrets every stack needs) get placeholders,
and a note names each with the command the first `pulumi up` needs run.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stacks.config.derived_explain import explain
from stacks.config.masked import PLACEHOLDER_PREFIX, mask
from stacks.config.reader import SettingsError
from stacks.config.settings import NAMESPACE, REQUIRED_SECRET_KEYS
from stacks.tools import dispatcher_env, env_keys, refused_replay
from stacks.tools.mocks import Deployed, Invoke, Registration, decode_json, is_secret, run_program
from stacks.tools.paths import REPOSITORY, SNAPSHOTS, stack_document, stack_file, stack_names
from stacks.tools.preflight import (
    bot_files,
    bot_runtime,
    destroy,
    held_subnets,
    immutable,
    protected_deletes,
    replacements,
    store_rotation,
)
from stacks.tools.preflight.cli_config import has_secure_value, masked, plain_leaves, secure_leaf
from stacks.tools.preflight.documented import documented_commands

SECRET = "[secret]"  # noqa: S105 - the mask shown instead of a value
# The plan must not depend on who renders it: fixed instead of git or the environment.
PLAN_REVISION = "plan"
# The plan stands in for a stack header's documented `pulumi config set` lines with fixed, fake values.
# Longer single-line values with `&&` clauses print a clause a line.
LONG_LINE, CLAUSE, ALTERNATIVE = 120, " && ", " || "
PLACEHOLDERS = {"certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/00000000-plan-placeholder",
                "dispatcherDomain": "voicefleet.example.com"}


def stack_config(stack: str) -> tuple[dict[str, str], list[str]]:
    """The stack file's config as the engine passes it (strings), plus the secret keys."""
    document = stack_document(stack)
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in (document.get("config") or {}).items():
        if secure_leaf(value):
            # Its own stand-in, from its ciphertext: two secrets never look alike, and a check of its
            # length or shape waits for `pulumi up` (stacks/config/masked.py).
            config[key] = mask(value["secure"])
            secret_keys.append(key)
        elif has_secure_value(value):  # `pulumi config set --secret --path`: one secret object, as JSON
            if key == f"{NAMESPACE}:botSecrets" and (plain := plain_leaves(value, "botSecrets")):
                # The program cannot tell (it gets the whole object as a secret); the stack file can.
                raise SettingsError(f"{key}: {', '.join(plain)} is in plain text in {stack_file(stack).name} (set "
                                    "without --secret): pulumi config set --secret --path "
                                    f"'{plain[0]}' VALUE, and remove the plain value from the file's history")
            config[key] = json.dumps(masked(value, SECRET))
            secret_keys.append(key)
        elif isinstance(value, bool):
            config[key] = "true" if value else "false"
        elif isinstance(value, (dict, list)):
            config[key] = json.dumps(value)
        else:
            config[key] = str(value)
    for missing in placeholders(stack):
        config[missing.full_key] = missing.value
        secret_keys.extend([missing.full_key] if missing.secret else [])
    config.setdefault(f"{NAMESPACE}:sourceRevision", PLAN_REVISION)
    return config, secret_keys


@dataclass(frozen=True)
class Placeholder:
    """A value a first deploy sets that the stack file does not hold, which the plan stands in for."""

    secret: bool
    key: str  # without the namespace
    value: str  # the stand-in
    documented: str  # the value the stack file's header shows (`<key>`), "" when it shows none

    @property
    def full_key(self) -> str:
        return f"{NAMESPACE}:{self.key}"

    def command(self, stack: str) -> str:
        """The command that sets it; a secret's value is prompted for, never on the command line."""
        if self.secret:
            return f"pulumi config set --secret {self.key} -s {stack}"
        return f"pulumi config set {self.key} {self.documented or '<value>'} -s {stack}"


def placeholders(stack: str) -> list[Placeholder]:
    """The stack header's documented `pulumi config set` lines and the secrets every stack needs,
    those the stack file does not hold yet, each with the plan's stand-in."""
    document = stack_document(stack)
    held = set(document.get("config") or {})
    found: dict[str, Placeholder] = {}
    for secret, key, value in documented_commands(stack):
        if f"{NAMESPACE}:{key}" not in held and key not in found:
            # Secrets: long enough for every length rule (botChannelToken: 32); they print as [secret].
            found[key] = Placeholder(secret, key, f"{PLACEHOLDER_PREFIX}{key}-0123456789abcdef" if secret
                                     else PLACEHOLDERS.get(key, f"{PLACEHOLDER_PREFIX}{key}"), value)
    for key in REQUIRED_SECRET_KEYS:
        if f"{NAMESPACE}:{key}" not in held and key not in found:
            found[key] = Placeholder(True, key, f"{PLACEHOLDER_PREFIX}{key}", "")
    return list(found.values())


def first_up_notes(stack: str, overrides: Mapping[str, str] | None = None, done: str = "planned") -> list[str]:
    """What the first `pulumi up` still needs: each value the plan filled with a placeholder (and no
    --config gave), with the command that sets it; `done`: what was done with the placeholder."""
    given = {key if ":" in key else f"{NAMESPACE}:{key}" for key in overrides or {}}
    where = stack_file(stack).relative_to(REPOSITORY).as_posix()
    return [f"{missing.key} is not set in {where}: {done} with a placeholder; the first "
            f"`pulumi up` needs it: `{missing.command(stack)}`" + (" (it prompts for the value)" if missing.secret
                                                                    else "")
            for missing in placeholders(stack) if missing.full_key not in given]


# JSON documents in string inputs (policies, container definitions) diff field by field.
_decode = decode_json


def _value(value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    if is_secret(value):
        return [f"{pad}{SECRET}"]
    value = _decode(value)
    if isinstance(value, dict):
        lines = []
        for key in sorted(value):
            inner = _decode(value[key])
            if is_secret(inner) or not isinstance(inner, (dict, list)) or not inner:
                lines.append(f"{pad}{key}: {_scalar(inner, pad)}")
            else:
                lines.append(f"{pad}{key}:")
                lines.extend(_value(inner, indent + 1))
        return lines
    if isinstance(value, list):
        lines = []
        for item in value:
            item = _decode(item)
            if isinstance(item, (dict, list)) and item and not is_secret(item):
                sub = _value(item, indent + 1)
                lines.append(f"{pad}- {sub[0].strip()}")
                lines.extend(sub[1:])
            else:
                lines.append(f"{pad}- {_scalar(item, pad)}")
        return lines
    return [f"{pad}{_scalar(value, pad)}"]


def _scalar(value: Any, pad: str = "") -> str:
    """A value after its key (or `- `) at indent `pad`: a block's lines go two further in, as YAML reads them."""
    if is_secret(value):
        return SECRET
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # the engine sends every number as a float
    if isinstance(value, str):
        inner = pad + "  "
        if "\n" in value:
            return "|\n" + "\n".join(inner + line for line in value.splitlines())
        if len(value) > LONG_LINE and CLAUSE in value:
            # A long condition (an admission policy's CEL) a clause a line, folded as YAML's `>` folds: a change
            # to one clause is then a one-line diff. The value is the lines joined by spaces.
            first, *rest = value.split(CLAUSE)
            lines = [part for n, clause in enumerate((first, *rest))
                     for part in _alternatives(clause, "&& " if n else "")]
            return ">\n" + "\n".join(inner + line for line in lines)
        return value
    return json.dumps(value)


def _alternatives(clause: str, lead: str) -> list[str]:
    """A clause still too long for a line, an alternative (`||`) a line."""
    if len(clause) <= LONG_LINE or ALTERNATIVE not in clause:
        return [lead + clause]
    first, *rest = clause.split(ALTERNATIVE)
    return [lead + first, *(f"|| {alternative}" for alternative in rest)]


def _named(urn: str) -> str:
    """A resource as its plan's header line names it: its type and name."""
    return f"{urn.split('::')[2].rsplit('$', 1)[-1]}  {urn.split('::')[-1]}"


def derivation(stack: str, overrides: Mapping[str, str] | None = None) -> list[str]:
    """What the stack file (and --config) sets and what its size and profile derive, placeholders left out."""
    document = stack_document(stack)
    config = {key: str(value) for key, value in (document.get("config") or {}).items()}
    config.update({key if ":" in key else f"{NAMESPACE}:{key}": value for key, value in (overrides or {}).items()})
    return explain(config, NAMESPACE)


def render(stack: str, registrations: list[Registration], derived: Sequence[str] = ()) -> str:
    lines = [f"# {stack}: {len(registrations)} resources (offline plan under mocks; ids and digests are fake)"]
    lines.extend(f"# {line}" for line in derived)
    for reg in sorted(registrations, key=lambda r: r.urn):
        flags = (" [protect]" if reg.protect else "") + (" [retain on delete]" if reg.retain_on_delete else "")
        lines.append("")
        lines.append(f"{reg.type}  {reg.name}{flags}")
        if reg.parent and not reg.parent.endswith("pulumi:pulumi:Stack::" + reg.parent.split("::")[-1]):
            parent_type = reg.parent.split("::")[2].rsplit("$", 1)[-1]
            lines.append(f"  parent: {parent_type}  {reg.parent.split('::')[-1]}")
        if reg.provider:
            lines.append(f"  provider: {reg.provider.split('::')[-2]}")
        if reg.custom_timeouts:
            lines.append("  customTimeouts: " + ", ".join(f"{k}={v}" for k, v in sorted(reg.custom_timeouts.items())))
        # What a lifecycle hinges on: what the engine never compares, and what it waits for beyond the inputs.
        if reg.ignore_changes:
            lines.append("  ignoreChanges: " + ", ".join(sorted(reg.ignore_changes)))
        if reg.depends_on:
            lines.append("  dependsOn: " + ", ".join(_named(urn) for urn in reg.depends_on))
        inputs = {k: v for k, v in reg.inputs.items() if not k.startswith("__")}
        lines.extend(_value(inputs, 1))
    return "\n".join(lines) + "\n"


def plan(stack: str) -> str:
    config, secret_keys = stack_config(stack)
    return render(stack, run_program(config, secret_keys, stack=stack).registrations, derivation(stack))


class _Diagnostics(logging.Handler):
    """What the program logs with pulumi.log: under mocks Pulumi's engine stand-in hands each message
    to the root logger (pulumi/runtime/mocks.py MockEngine); libraries log under their own names."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "root":
            self.messages.append(record.getMessage())



def violations(stack: str, registrations: list[Registration], invokes: list[Invoke],
               recreated: list[Registration], outputs: dict[str, Any]) -> list[str]:
    """The preflight's rules on one run (stacks/tools/preflight/stack.py), imported only when a plan is
    checked: a stack's config check reads this module's placeholders, and the rules' modules cost it 0.02 s."""
    from stacks.tools.preflight.stack import violations as preflight_violations

    return preflight_violations(stack, registrations, invokes, recreated, outputs)


@contextlib.contextmanager
def _diagnostics() -> Iterator[list[str]]:
    root = logging.getLogger()
    handler, level = _Diagnostics(), root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler.messages
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def checked_plan(stack: str, overrides: Mapping[str, str] | None = None) -> tuple[str, list[str], list[str]]:
    """The plan, the preflight's violations and the notes for the operator (what the program says for
    `pulumi preview` to show, then the preflight's), for one run of the program. With `overrides`, the
    stack file's own configuration stands for what is deployed: it runs first and its outputs are recorded,
    so the change runs as the next `up` would, against them, and meets the refusals the program makes from
    its last outputs (a SettingsError, as `pulumi up` fails). A stack file this version refuses has no outputs
    to replay: a change to only the keys its refusal names plans as a first up, with a note saying so; any
    other change is refused (a SettingsError), as nothing could check it against the deployed stack. What
    they would change that the cloud refuses to change is a violation too (preflight/immutable.py), and so
    is a Kubernetes replacement that cuts sessions (preflight/replacements.py)."""
    deployed_config, deployed_secrets = stack_config(stack)
    config, secret_keys = dict(deployed_config), list(deployed_secrets)
    for key, value in (overrides or {}).items():  # as `pulumi config set KEY VALUE` writes them: plain
        full = key if ":" in key else f"{NAMESPACE}:{key}"
        config[full] = value
        secret_keys = [name for name in secret_keys if name != full]
    last_up: Deployed | None = None
    deployed: list[Registration] = []
    refused_file: list[str] = []
    if overrides:
        try:
            with _diagnostics():  # what the deployed configuration says is not this plan's to note
                before = run_program(deployed_config, deployed_secrets, stack=stack)
        except SettingsError as refused:  # often the very value the change fixes: no outputs to replay
            refused_replay.check_change(refused, deployed_config, overrides)  # nothing else, unchecked
            refused_file.append(f"the deployed file is refused by this version ({refused}); planning the change "
                                "as a first up")
        else:
            deployed, last_up = before.registrations, Deployed()
            last_up.record(before)  # its outputs, read back by the change's run through its own StackReference
    with _diagnostics() as said:
        run = run_program(config, secret_keys, stack=stack, deployed=last_up)
    with _diagnostics():  # the same program again says the same: its notes are the first run's, said once
        recreated = run_program(config, secret_keys, stack=stack, generation=2).registrations
    outputs = next((o for urn, o in run.completed.items() if urn.endswith(f"Stack::{NAMESPACE}-{stack}")
                    and "$" in urn), {})  # the stack component's outputs: what infra/__main__.py exports
    notes = refused_file + list(dict.fromkeys(said)) + first_up_notes(stack, overrides)
    notes += env_keys.hints(os.environ, stack)
    notes += destroy.leftover_notes(run.registrations, config.get("gcp:project", ""), config.get("gcp:region", ""))
    notes += held_subnets.leftover_notes(run.registrations, config.get("azure-native:subscriptionId", ""))
    notes += store_rotation.notes(run.registrations, stack)
    notes += bot_runtime.notes(run.registrations, stack, config.get("gcp:project", ""), config.get("gcp:region", ""))
    notes += bot_files.notes(run.registrations)
    found = violations(stack, run.registrations, run.invokes, recreated, outputs)
    # The dispatcher's own start-up check on the environment the stack gives it (secrets standing in as set).
    found += dispatcher_env.refusals(run.registrations)
    if overrides:
        found += immutable.violations(deployed, run.registrations, overrides)
        found += replacements.violations(deployed, run.registrations, overrides)
        notes += replacements.host_notes(deployed, run.registrations)
        notes += protected_deletes.notes(deployed, run.registrations, stack)
    return render(stack, run.registrations, derivation(stack, overrides)), found, notes


def committed_snapshot(stack: str, ref: str) -> str:
    """The snapshot as committed at `ref` (what the reviewer's base branch holds)."""
    path = (SNAPSHOTS / f"{stack}.txt").relative_to(REPOSITORY)
    shown = subprocess.run(["git", "show", f"{ref}:{path.as_posix()}"], cwd=REPOSITORY, capture_output=True, text=True,
                           timeout=30, check=False)
    if shown.returncode != 0:
        raise SystemExit(f"stacks.plan: no snapshot {path} at {ref}: {shown.stderr.strip()}")
    return shown.stdout


def diff(stack: str, before: str, after: str, ref: str) -> str:
    """A unified diff whose hunk headers name the resource each hunk's first change is in, as git's funcname
    names a function."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    lines = list(difflib.unified_diff(old, new, fromfile=f"{stack} @ {ref}", tofile=f"{stack} (this tree)", n=3))
    return "".join(_located(lines, index, old, new) if _HUNK.match(line) else line for index, line in enumerate(lines))


_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@$")


def _located(lines: list[str], index: int, old: list[str], new: list[str]) -> str:
    """The hunk header at `index` with the header line of the resource its first changed line is in: in the
    new text for an added line, the old for a removed one."""
    found = _HUNK.match(lines[index])
    assert found is not None
    context = 0
    for line in lines[index + 1:]:
        if line[:1] != " ":
            break
        context += 1
    added = index + 1 + context < len(lines) and lines[index + 1 + context][:1] == "+"
    text, position = (new, int(found[2]) + context) if added else (old, int(found[1]) + context)
    above = next((text[i].strip() for i in range(min(position, len(text)) - 1, -1, -1)
                  if text[i][:1] not in (" ", "#", "\n")), "")
    return f"{lines[index].rstrip(chr(10))} {above}\n" if above else lines[index]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.plan", description=__doc__.splitlines()[0])
    parser.add_argument("stacks", nargs="+", help="stack names, e.g. aws-dev (reads stacks/Pulumi.<name>.yaml)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write tests/infra/snapshots/<stack>.txt")
    mode.add_argument("--diff", nargs="?", const="HEAD", metavar="REF",
                      help="print a unified diff against the snapshot committed at REF (default HEAD); "
                           "exit 1 when the plan changed")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="plan with this (plain) value as if `pulumi config set KEY VALUE` had set it")
    args = parser.parse_args(argv)
    if bad := [item for item in args.config if "=" not in item]:
        parser.exit(2, f"python -m stacks.plan: --config wants KEY=VALUE (got {', '.join(bad)})\n")
    overrides = dict(item.split("=", 1) for item in args.config)
    known = stack_names()
    unknown = [stack for stack in args.stacks if stack not in known]
    if unknown:
        parser.exit(2, f"python -m stacks.plan: unknown stack(s) {', '.join(unknown)}; known: {', '.join(known)}\n")
    status = 0
    for stack in args.stacks:
        try:
            text, problems, notes = checked_plan(stack, overrides)
        except SettingsError as exc:  # a bad value in the stack file: one line, no traceback
            print(f"{stack}: {exc}", file=sys.stderr)
            status = 2
            continue
        if problems:
            for problem in problems:
                print(f"{stack}: {problem}", file=sys.stderr)
            status = 1
            continue
        for note in notes:
            print(f"# {stack} note: {note}", file=sys.stderr)
        if args.write:
            (SNAPSHOTS / f"{stack}.txt").write_text(text)
            print(f"wrote {SNAPSHOTS / f'{stack}.txt'}", file=sys.stderr)
        elif args.diff:
            changes = diff(stack, committed_snapshot(stack, args.diff), text, args.diff)
            sys.stdout.write(changes or f"# {stack}: no change against {args.diff}\n")
            status = status or (1 if changes else 0)
        else:
            sys.stdout.write(text)
    return status


__all__ = ["checked_plan", "derivation", "diff", "first_up_notes", "main", "placeholders", "plan", "render",
           "stack_config"]

if __name__ == "__main__":
    raise SystemExit(main())
