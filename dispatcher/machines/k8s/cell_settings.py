"""`K8S_CELLS`: the Kubernetes clusters a deployment's bot pods spread over, as a JSON list.

Each cell names its cluster's API server (`api_url`, https: a bearer token never goes over plain
http, except to a local fake on 127.0.0.1; no `user:password@` in it), the file holding the dispatcher's token for it
(`token_file`) and the file of that cluster's CA (`ca_file`): credentials live in files mounted from
a Secret, never in the setting itself. It may name its own `namespace` (else K8S_NAMESPACE) and
`max_pods`, the most bot pods the deployment runs there: a soft cap under the namespace's
ResourceQuota (unset: the quota alone), counted once, not per dispatcher replica. Each replica counts
the cell from its listing of the namespace's bot pods, every replica's (the reaper's, about once a
minute: dispatcher/machines/cell_launches.py `list`), plus its own launches since; so between two
listings the replicas together may pass it by their own launches, which the quota still holds. A pod
being deleted counts until it is gone, as the quota charges it. `max_pods: 0` closes the cell (to drain
it before maintenance or its removal): no new session or reserve pod goes there, its sessions end as
they would, and the reserve retires its idle pods (dispatcher/machines/cell_reserve.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dispatcher.machines.cell_list import cell_fields, cell_items, named_once, text_field, whole_number
from dispatcher.settings import SettingsError, credentialed_url

FIELDS = ("name", "api_url", "token_file", "ca_file", "namespace", "max_pods")
EXAMPLE = ('[{"name": "a", "api_url": "https://10.0.0.1", "token_file": "/var/run/cells/a/token", '
           '"ca_file": "/var/run/cells/a/ca.crt"}]')
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a DNS-1123 label
_SECRETS = ("token", "bearer_token", "client_key", "password")  # what a credential in the setting would be called
CLOSED = " (0 closes the cell: no new session or reserve pod goes there; unset: only its ResourceQuota bounds it)"


@dataclass(frozen=True)
class K8sCell:
    name: str
    api_url: str
    token_file: str
    ca_file: str | None  # None: a local fake over plain http
    namespace: str
    max_pods: int | None = None


def k8s_cells(raw: str, namespace: str) -> tuple[K8sCell, ...]:
    """The cells `K8S_CELLS` lists (empty: the one cluster K8S_API_URL names). `namespace`: the
    deployment's, where a cell names none."""
    items = cell_items("K8S_CELLS", raw, EXAMPLE, "cluster and namespace")
    cells = tuple(_cell(item, i, namespace) for i, item in enumerate(items))
    named_once("K8S_CELLS", {"a cell": [c.name for c in cells],
                             "a cluster and namespace": [f"{c.api_url} {c.namespace}" for c in cells]},
               "cluster and namespace", "a namespace's quota is not doubled by listing it twice, and two cells "
               "would each take the other's pods for its own")
    return cells


def _cell(item: Any, index: int, namespace: str) -> K8sCell:
    where = f"K8S_CELLS[{index}]"
    if isinstance(item, dict) and (secret := next((k for k in _SECRETS if k in item), None)):
        raise SettingsError(f"{where}: {secret!r} is a credential, which never goes in the setting: write it to a "
                            "file mounted from a Secret and name the file (token_file, ca_file)")
    item = cell_fields(item, where, FIELDS, EXAMPLE, "name, api_url and token_file")
    name = item["name"]
    where = f"{where} ({name})"
    api_url = (text_field(item, "api_url", where) or "").rstrip("/")
    if not api_url:
        raise SettingsError(f"{where}: api_url is required: the cluster's API server, e.g. \"https://10.0.0.1\"")
    credentialed_url(f"{where}: api_url", api_url, "the dispatcher's token from token_file")
    local = not api_url.startswith("https://")  # a local fake on 127.0.0.1, the one plain http allowed
    token_file = _path(item, "token_file", where, "the file holding the dispatcher's token for this cluster")
    ca_file = _path(item, "ca_file", where, "the file of this cluster's CA") if not local or "ca_file" in item \
        else None
    own = text_field(item, "namespace", where)
    if own is not None and not _NAMESPACE.fullmatch(own):
        raise SettingsError(f"{where}: namespace {own[:70]!r} is not a namespace name (a DNS-1123 label)")
    return K8sCell(name=name, api_url=api_url, token_file=token_file, ca_file=ca_file, namespace=own or namespace,
                   max_pods=whole_number(item, "max_pods", where, CLOSED, least=0))


def _path(item: Any, key: str, where: str, what: str) -> str:
    path = text_field(item, key, where)
    if path is None or not path.startswith("/") or path.endswith("/"):
        raise SettingsError(f"{where}: {key} must be an absolute path of a file: {what}, mounted from a Secret "
                            f"(got {str(path)[:60]!r})")
    return path
