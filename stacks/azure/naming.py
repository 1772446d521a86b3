"""Azure names: the globally unique ones carry a tail derived from the subscription and stack.

Container registries (5-50 alphanumerics), key vaults (3-24 alphanumerics and single hyphens, a
letter first) and Azure Managed Redis clusters are DNS names under Azure's own domains, unique
across every customer, so a stack's name alone may be taken. The tail is a hash of the
subscription id and the stack's prefix: stable across `up`s (a name change replaces the resource)
and different for the same stack in another subscription. A deleted key vault keeps its name for
its soft-delete retention (stacks/azure/secrets.py), so re-creating a destroyed stack within that
window needs the vault purged first (docs/pulumi.md, Azure).

Role definition and role assignment names must be GUIDs: uuid5 of the subscription and a purpose,
so a second `up` names the same assignment and Azure refuses no duplicate.
"""

from __future__ import annotations

import hashlib
import re
import uuid

_NAMESPACE = uuid.UUID("6f1d2c1e-5b7a-4c3e-9a51-0c6f3f0e7a44")  # voicefleet's own, fixed forever


def tail(subscription_id: str, prefix: str, length: int = 6) -> str:
    return hashlib.sha256(f"{subscription_id}/{prefix}".encode()).hexdigest()[:length]


def registry_name(subscription_id: str, prefix: str) -> str:
    """Alphanumerics only, at most 50: the prefix without its dashes, then the tail."""
    return re.sub(r"[^a-z0-9]", "", prefix.lower())[:44] + tail(subscription_id, prefix)


def key_vault_name(subscription_id: str, stack: str) -> str:
    """`vf-<stack, at most 12>-<tail>`: at most 22 characters, no `--` (stack names have none)."""
    return f"vf-{stack[:12].rstrip('-')}-{tail(subscription_id, stack)}"


def redis_name(subscription_id: str, prefix: str) -> str:
    return f"{prefix[:50].rstrip('-')}-{tail(subscription_id, prefix)}"


def container_app_name(stack: str) -> str:
    """A Container App's name: 2-32 lowercase alphanumerics and hyphens (stack names are at most 20)."""
    return f"{stack}-dispatcher"


def container_group_prefix(stack: str) -> str:
    """The bots' container groups are named `<this>-<session id>`; the dispatcher's reaper and the drain
    match it. No trailing or doubled '-': ACI refuses a group name with consecutive dashes."""
    return f"vf-{stack}"


def guid(subscription_id: str, purpose: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{subscription_id}/{purpose}"))


def slug(env_name: str) -> str:
    """A variable name as a Key Vault secret name / Container Apps secret name (lowercase, hyphens)."""
    return env_name.lower().replace("_", "-")
