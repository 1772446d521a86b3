"""Every example stack asks a person to hold at most MOST_KEYS keys.

Counted as a reader meets them in stacks/Pulumi.<stack>.yaml: each key the file sets (`voicefleet:*`
and provider keys such as `aws:region`), plus each key a comment names, which a reader takes as one
more to set: in a `pulumi config set` line, written in full (`voicefleet:reserveSchedule`), or by a
name no English word shares (`secretsRotation`, any camelCase key of Pulumi.yaml). A one-word key
(`protect`, `environment`) counts in a comment only in key form (`pulumi config set protect`,
`voicefleet:protect`, `` `protect` ``): in prose it is a word. What `size` and `profile` derive is not
held: the plan lists it under "derived" (docs/pulumi.md, "Size and profile").
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from stacks.config.settings import NAMESPACE
from stacks.tools.paths import PROJECT_FILE, stack_file, stack_names

MOST_KEYS = 15
_SET_COMMAND = re.compile(r"pulumi config set (?:--secret |--path |--plaintext )*'?([A-Za-z][\w:-]*)")
# A provider's key (`aws:region`), not a word of an ARN or a URL (`arn:aws:acm:…`).
_FULL = re.compile(r"(?<![\w/.:-])((?:voicefleet|aws|gcp|azure-native|kubernetes):[A-Za-z][A-Za-z0-9]*)")
_WORD = re.compile(r"(?<![\w/.-])([A-Za-z][A-Za-z0-9]*)")
_QUOTED = re.compile(r"`([a-z][A-Za-z0-9]*)[`:]")


def project_keys() -> frozenset[str]:
    """Every key Pulumi.yaml declares (ours without the namespace)."""
    return frozenset(yaml.safe_load(PROJECT_FILE.read_text())["config"])


def _short(key: str) -> str:
    return key.removeprefix(f"{NAMESPACE}:").split(".", 1)[0]


def held_keys(text: str, declared: frozenset[str]) -> set[str]:
    """The keys a stack file `text` sets or tells its reader to set (module docstring)."""
    held = {_short(str(key)) for key in (yaml.safe_load(text) or {}).get("config") or {}}
    for line in text.splitlines():
        if "#" not in line:
            continue
        comment = line.split("#", 1)[1]
        named = {_short(key) for key in _SET_COMMAND.findall(comment) + _FULL.findall(comment)}
        named |= set(_QUOTED.findall(comment))
        named |= {word for word in _WORD.findall(comment) if word != word.lower()}
        provider = {key for key in named if ":" in key}
        held |= provider | ({key for key in named if ":" not in key} & declared)
    return held


def test_the_count_takes_what_a_comment_tells_a_reader_to_set() -> None:
    declared = frozenset({"cloud", "protect", "dailyApiKey", "secretsRotation", "reserveSchedule", "botSecrets"})
    text = ("# pulumi config set --secret dailyApiKey <key> -s x\n"
            "# rotate them with secretsRotation; protect in prose is a word, `protect` is the key\n"
            "# pulumi config set --secret --path 'botSecrets.CARTESIA_API_KEY'\n"
            "config:\n  aws:region: us-east-1\n  voicefleet:cloud: aws\n"
            "  # voicefleet:reserveSchedule: \"13:00-22:00=4\" and gcp:project\n")
    assert held_keys(text, declared) == {"aws:region", "cloud", "dailyApiKey", "secretsRotation", "protect",
                                         "botSecrets", "reserveSchedule", "gcp:project"}
    assert held_keys("# Protect it, then the Environment: words\nconfig:\n  voicefleet:cloud: aws\n",
                     declared) == {"cloud"}


@pytest.mark.parametrize("stack", stack_names())
def test_an_example_stack_asks_for_at_most_fifteen_keys(stack: str) -> None:
    path: Path = stack_file(stack)
    held = held_keys(path.read_text(), project_keys())
    assert len(held) <= MOST_KEYS, (
        f"{path.name} asks a reader to hold {len(held)} keys (at most {MOST_KEYS}): {', '.join(sorted(held))}. "
        "Derive what a production stack needs from size or profile (stacks/config/derived.py), or leave a key "
        "at its default, rather than set it or name it in a comment")
