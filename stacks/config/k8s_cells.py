"""`k8sCells`: the Kubernetes clusters a k8s stack's bot pods spread over (the dispatcher's K8S_CELLS).

Each cell is a cluster's namespace with its own API server, ResourceQuota and nodes
(dispatcher/machines/k8s/cells.py). The stack reads the list as the dispatcher reads K8S_CELLS (one
parser, stacks/config/cells.py) with one field of its own, `secret`: the Secret the team keeps in the
dispatcher's namespace with the dispatcher's `token` for that cluster and the cluster's `ca.crt`, which
the stack mounts read-only at the cell's token_file and ca_file (stacks/k8s/cells.py) and never
reads: no credential is in the stack's config or state. K8S_CELLS goes on without `secret`. The store
the dispatcher needs for it is always on (k8sStore); the agent-sandbox mode is refused (its pool is one
cluster's). The ceiling counts each cluster's `max_pods` once, not per dispatcher replica
(stacks/config/ceiling_cells.py). The stack makes nothing in the cells' clusters: each `up` says what
each one needs (`unmade`), and what removing one leaves running (`removed`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dispatcher.machines.k8s.cell_settings import K8sCell, k8s_cells
from dispatcher.machines.k8s.settings import PODS
from dispatcher.settings import SettingsError
from stacks.config import cells as stack_cells
from stacks.config.reader import Reader

CELLS_KEY = "k8sCells"
SECRET_FIELD = "secret"  # noqa: S105 - a field naming the team's Secret, never holding one
# The Secret's keys: those of a `kubernetes.io/service-account-token` Secret, and of `kubectl create secret
# generic --from-file=token=… --from-file=ca.crt=…`.
TOKEN_KEY, CA_KEY = "token", "ca.crt"
# A Secret's name: a DNS-1123 subdomain (apimachinery IsDNS1123Subdomain).
_SECRET_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class StackCell:
    """A cell as the dispatcher reads it, and the Secret in the dispatcher's namespace its files come from."""

    cell: K8sCell
    secret: str


def cells(cfg: Reader, *, mode: str, namespace: str, dispatcher_namespace: str) -> tuple[StackCell, ...]:
    """The clusters `k8sCells` lists (`namespace`: the bots', K8S_NAMESPACE, where a cell names none)."""
    if stack_cells.none_listed(cfg.plain(CELLS_KEY)):
        return ()
    if mode != PODS:
        raise cfg.fail(CELLS_KEY, f"is for k8sMode {PODS} only (this stack's is {mode}): a SandboxWarmPool is one "
                                  "cluster's, so its claims cannot spread over clusters. Run one cluster per stack "
                                  f"in that mode (`pulumi config rm {cfg.command_key(CELLS_KEY)}`), or set k8sMode "
                                  f"{PODS}")
    listed = stack_cells.read(cfg, CELLS_KEY, lambda text: _parse(text, namespace), runtime=PODS, bot_runtime=PODS,
                              otherwise="")
    for index, (cell, secret) in enumerate(listed):
        if not cell.api_url.startswith("https://") or cell.ca_file is None:
            raise cfg.fail(CELLS_KEY, f"cell {cell.name}'s api_url {cell.api_url} is plain http: from the "
                                      "dispatcher's pod that is the pod itself, not a cluster. Name the cluster's "
                                      "https API server, and a ca_file the stack mounts its CA at")
        if secret is None:
            raise cfg.fail(CELLS_KEY, f"cell {cell.name} names no {SECRET_FIELD}: the Secret in "
                                      f"{dispatcher_namespace} holding the dispatcher's {TOKEN_KEY!r} for that "
                                      f"cluster and its {CA_KEY!r}, mounted at its token_file and ca_file. Make it "
                                      f"(`kubectl -n {dispatcher_namespace} create secret generic voicefleet-cell-"
                                      f"{cell.name} --from-file={TOKEN_KEY}=<token file> --from-file={CA_KEY}=<CA "
                                      f"file>`), then `pulumi config set --path '{cfg.command_key(CELLS_KEY)}"
                                      f"[{index}].{SECRET_FIELD}' voicefleet-cell-{cell.name}`")
        if not _SECRET_NAME.match(secret):
            raise cfg.fail(CELLS_KEY, f"cell {cell.name}'s {SECRET_FIELD} {secret[:60]!r} is not a Secret's name "
                                      "(lowercase letters, digits, '-' and '.', 253 at most): name the Secret "
                                      f"itself, in {dispatcher_namespace}, never its contents")
    return tuple(StackCell(cell, secret) for cell, secret in listed if secret is not None)


def _parse(text: str, namespace: str) -> tuple[tuple[K8sCell, str | None], ...]:
    """The dispatcher's parser on the list less each cell's `secret` (a field the dispatcher does not take),
    each cell beside its `secret` (None: none, or not a string: `cells` names it)."""
    try:
        items = json.loads(text)
    except ValueError:
        items = None
    if not isinstance(items, list):  # the dispatcher's parser refuses it, in its own words
        return tuple((cell, None) for cell in k8s_cells(text, namespace))
    secrets = [_secret(item) for item in items]
    bare = [{k: v for k, v in item.items() if k != SECRET_FIELD} if isinstance(item, dict) else item
            for item in items]
    try:
        found = k8s_cells(json.dumps(bare), namespace)
    except SettingsError as exc:
        if "unknown field" not in str(exc):
            raise
        said = str(exc)[:-1]
        raise SettingsError(f"{said}, and in a stack {SECRET_FIELD}: the Secret of its token and CA)") from None
    return tuple(zip(found, secrets, strict=True))


def _secret(item: Any) -> str | None:
    value = item.get(SECRET_FIELD) if isinstance(item, dict) else None
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"{SECRET_FIELD} must be a Secret's name, a non-empty string (got {str(value)[:40]!r})")
    return value.strip()


def listed(setting: str, namespace: str) -> tuple[K8sCell, ...]:
    """The cells of a K8S_CELLS value the stack's settings hold (`cells_setting`'s, checked: "" none)."""
    return k8s_cells(setting, namespace) if setting else ()


def from_file(text: str, namespace: str) -> tuple[K8sCell, ...] | None:
    """The cells a stack file's `k8sCells` lists (() none); None: a list the program would refuse."""
    found = stack_cells.from_file(text, lambda raw: _parse(raw, namespace))
    return None if found is None else tuple(cell for cell, _ in found)


def cells_setting(listed: Sequence[StackCell]) -> str:
    """K8S_CELLS for the dispatcher: the cells as JSON, each with the fields it set, without its Secret's name."""
    return stack_cells.setting([stacked.cell for stacked in listed])
