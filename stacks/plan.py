"""Render a stack's resources offline, as text a reviewer can diff.

    uv run python -m stacks.plan aws-dev            # print the plan of stacks/Pulumi.aws-dev.yaml
    uv run python -m stacks.plan aws-dev --write    # refresh tests/infra/snapshots/aws-dev.txt

The program runs under mocks (no CLI, plugins or credentials). Outputs that only the cloud knows
(ids, ARNs, digests) are mocked deterministically, so the text changes only when the program or
the stack's configuration does. Secret values print as [secret]; secret keys the stack file does
not hold (they are set with `pulumi config set --secret`) get placeholders.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from stacks.mocks import Registration, decode_json, is_secret, run_program
from stacks.settings import NAMESPACE, REQUIRED_SECRET_KEYS

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = ROOT / "tests" / "infra" / "snapshots"
SECRET = "[secret]"  # noqa: S105 - the mask shown instead of a value
# The plan must not depend on who renders it: fixed instead of git or the environment.
PLAN_REVISION = "plan"


def stack_config(stack: str) -> tuple[dict[str, str], list[str]]:
    """The stack file's config as the engine passes it (strings), plus the secret keys."""
    path = ROOT / "stacks" / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text()) or {}
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and "secure" in value:
            config[key] = SECRET
            secret_keys.append(key)
        elif isinstance(value, bool):
            config[key] = "true" if value else "false"
        elif isinstance(value, (dict, list)):
            config[key] = json.dumps(value)
        else:
            config[key] = str(value)
    for key in REQUIRED_SECRET_KEYS:
        full = f"{NAMESPACE}:{key}"
        if full not in config:
            config[full] = f"placeholder-{key}"
            secret_keys.append(full)
    config.setdefault(f"{NAMESPACE}:sourceRevision", PLAN_REVISION)
    return config, secret_keys


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
                lines.append(f"{pad}{key}: {_scalar(inner)}")
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
                lines.append(f"{pad}- {_scalar(item)}")
        return lines
    return [f"{pad}{_scalar(value)}"]


def _scalar(value: Any) -> str:
    if is_secret(value):
        return SECRET
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # the engine sends every number as a float
    if isinstance(value, str):
        if "\n" in value:
            return "|\n" + "\n".join("      " + line for line in value.splitlines())
        return value
    return json.dumps(value)


def render(stack: str, registrations: list[Registration]) -> str:
    lines = [f"# {stack}: {len(registrations)} resources (offline plan under mocks; ids and digests are fake)"]
    for reg in sorted(registrations, key=lambda r: r.urn):
        flags = " [protect]" if reg.protect else ""
        lines.append("")
        lines.append(f"{reg.type}  {reg.name}{flags}")
        if reg.parent and not reg.parent.endswith("pulumi:pulumi:Stack::" + reg.parent.split("::")[-1]):
            parent_type = reg.parent.split("::")[2].rsplit("$", 1)[-1]
            lines.append(f"  parent: {parent_type}  {reg.parent.split('::')[-1]}")
        if reg.provider:
            lines.append(f"  provider: {reg.provider.split('::')[-2]}")
        inputs = {k: v for k, v in reg.inputs.items() if not k.startswith("__")}
        lines.extend(_value(inputs, 1))
    return "\n".join(lines) + "\n"


def plan(stack: str) -> str:
    config, secret_keys = stack_config(stack)
    return render(stack, run_program(config, secret_keys, stack=stack).registrations)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.plan", description=__doc__.splitlines()[0])
    parser.add_argument("stacks", nargs="+", help="stack names, e.g. aws-dev (reads stacks/Pulumi.<name>.yaml)")
    parser.add_argument("--write", action="store_true", help="write tests/infra/snapshots/<stack>.txt")
    args = parser.parse_args(argv)
    for stack in args.stacks:
        text = plan(stack)
        if args.write:
            (SNAPSHOTS / f"{stack}.txt").write_text(text)
            print(f"wrote {SNAPSHOTS / f'{stack}.txt'}", file=sys.stderr)
        else:
            sys.stdout.write(text)
    return 0


__all__ = ["main", "plan", "render", "stack_config"]

if __name__ == "__main__":
    raise SystemExit(main())
