"""What a plan with `--config` may do when the stack file it replays as the deployed stack is refused.

Without the replay there are no last outputs, no deployed registrations: the refusals read from the last
`up`, the cloud's immutable fields and the session-cutting replacements all go unchecked. So the change
plans as a first up only when it sets nothing but the keys the refusal names (the fix it asks for)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from stacks.config.reader import SettingsError
from stacks.config.settings import NAMESPACE

# A refusal names its key in full (Reader.fail) and a fix as `pulumi config set KEY …`.
_CONFIG_SET = re.compile(r"`pulumi config set (?:--\S+ )*([\w.-]+(?::[\w.-]+)?)")


def full_key(key: str) -> str:
    return key if ":" in key else f"{NAMESPACE}:{key}"


def named_keys(refusal: str, known: Iterable[str]) -> set[str]:
    """The full keys among `known` that the refusal names in full, and those its `pulumi config set` commands set."""
    named = {key for key in known if re.search(rf"(?<![\w:.-]){re.escape(key)}(?![\w.-])", refusal)}
    return named | {full_key(key) for key in _CONFIG_SET.findall(refusal)}


def check_change(refusal: SettingsError, deployed: Mapping[str, object], overrides: Mapping[str, str]) -> None:
    """Raises a SettingsError (the plan exits 2) when the change sets a key the refusal does not name."""
    changed = {full_key(key) for key, value in overrides.items() if deployed.get(full_key(key)) != value}
    named = named_keys(str(refusal), set(deployed) | changed)
    if others := sorted(changed - named):
        raise SettingsError(
            f"the deployed file is refused by this version ({refusal}), so the plan cannot replay it to check "
            f"the change against the last `up`; it plans a first up only for a change to {', '.join(sorted(named))}. "
            f"Plan (and `pulumi up`) that fix alone first, then the change to {', '.join(others)}")


__all__ = ["check_change", "full_key", "named_keys"]
