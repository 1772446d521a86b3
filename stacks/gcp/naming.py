"""The names a GCP stack gives what it creates and what its dispatcher launches, from the stack name.

Stack names hold no "--" and are at most 20 characters (stacks/config/settings.py), which every
name here relies on.
"""

from __future__ import annotations


def instance_prefix(stack: str) -> str:
    """GCE_INSTANCE_PREFIX: `vf-<stack>-` (≤ 24 characters; the dispatcher allows 31), so VMs are
    `vf-<stack>--<id>`. Per stack, so stacks sharing a project never reap each other's VMs, and the
    IAM conditions can name them: stack names hold no "--", so no other stack's VM name (say of
    `<stack>-eu`, `vf-<stack>-eu--…`) starts with `vf-<stack>--`."""
    return f"vf-{stack}-"


def dispatcher_service_name(prefix: str) -> str:
    return f"{prefix}-dispatcher"


def account_id(stack: str, role: str) -> str:
    """Service account ids are 6-30 characters: short project prefix, the stack, the role."""
    return f"vf-{stack}-{role}"[:30].rstrip("-")
