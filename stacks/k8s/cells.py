"""`k8sCells` in the stack: each cell's token and CA in the dispatcher's pods, and what each cluster needs besides.

The Secret is the team's, in the dispatcher's namespace (stacks/config/k8s_cells.py): the kubelet
mounts it, so the dispatcher's RBAC grows by nothing and the stack never reads it. Each directory a
cell's files are in is one Secret volume of the cell's own, listing the key each file takes (`token`,
`ca.crt`), never a subPath: the kubelet then swaps a rotated token in, which the dispatcher reads
again. A path that would clash is refused at preview, compared as the kubelet reads it (`//`, `/./`
and a trailing `/` folded): a directory two mounts share or nest in, a mount over the stack's own (the
channel's certificate, the pod's ServiceAccount), or over the image's and the system's directories,
which it would hide. Volumes are named by position, whatever the cells' names. The stack makes nothing
in a cell's cluster: `unmade` says, each `up`, what the team makes there; `removed`, what a cell taken
out of the list leaves running.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from typing import Any

import pulumi

from dispatcher.machines.k8s.settings import SERVICE_ACCOUNT_DIR
from stacks.config.k8s_cells import CA_KEY, CELLS_KEY, TOKEN_KEY, StackCell
from stacks.config.reader import NAMESPACE, SettingsError
from stacks.k8s.channel_tls import MOUNT_DIR as CHANNEL_TLS_DIR
from stacks.k8s.last_outputs import LastUp

# Mounts the dispatcher's pod has besides the cells' (the channel's, with k8sChannelTls stack: reserved either way).
STACK_MOUNTS = {CHANNEL_TLS_DIR: "the channel's certificate", SERVICE_ACCOUNT_DIR: "the pod's own ServiceAccount"}
# What a mount must not hide: the image's code and environment (images/dispatcher.Dockerfile), the system's,
# and the one writable scratch place.
HIDDEN = ("/app", "/opt/venv", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/proc", "/sys", "/dev",
          "/tmp")  # noqa: S108 - a directory the stack never mounts over
MODE = 0o444  # read-only for the dispatcher's non-root user, which the kubelet does not make the owner


def volumes(cells: Sequence[StackCell]) -> tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]:
    """The pod's volumes and the container's mounts for `cells`, refused where a path clashes. A volume is named
    by position, `cell-<cell's index>-<directory's index>`: a DNS-1123 label whatever the cell's name, and
    never two alike (a name cut to 63 characters could be another's)."""
    made: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    taken: dict[str, str] = dict(STACK_MOUNTS)
    for position, stacked in enumerate(cells):
        cell = stacked.cell
        assert cell.ca_file is not None  # stacks/config/k8s_cells.py refuses a cell without
        token_file, ca_file = _normal(cell.name, cell.token_file), _normal(cell.name, cell.ca_file)
        if token_file == ca_file:
            _refuse(f"cell {cell.name}'s token_file and ca_file are one path, {token_file}: the token and the "
                    "CA are two files; name two")
        by_directory: dict[str, list[dict[str, str]]] = {}
        for key, path in ((TOKEN_KEY, token_file), (CA_KEY, ca_file)):
            directory, name = posixpath.split(path)
            by_directory.setdefault(directory, []).append({"key": key, "path": name})
        for index, (directory, items) in enumerate(by_directory.items()):
            _claim(taken, directory, f"cell {cell.name}'s {' and '.join(i['path'] for i in items)}")
            volume = f"cell-{position}-{index}"
            made.append({"name": volume, "secret": {"secret_name": stacked.secret, "items": items,
                                                    "default_mode": MODE}})
            mounts.append({"name": volume, "mount_path": directory, "read_only": True})
    return tuple(made), tuple(mounts)


def _normal(cell: str, path: str) -> str:
    """`path` as the kubelet and the dispatcher find it: no repeated '/' (POSIX keeps a leading '//', which
    would slip past every comparison) and no '.'. A '..' is refused: it names another directory than it reads as; and so
    is a file name starting with '..', which the API refuses in a Secret volume's item."""
    if ".." in path.split("/"):
        _refuse(f"cell {cell}'s path {path} holds '..': name the file's directory itself, like "
                f"/var/run/cells/{cell}/token")
    if posixpath.basename(path).startswith(".."):
        _refuse(f"cell {cell}'s file {path} starts with '..', which a Secret volume's item path may not: name it "
                "otherwise, like token or ca.crt")
    return posixpath.normpath(re.sub("/+", "/", path))


def _same_place(path: str) -> str:
    """`path` compared as the container finds it: /var/run is a link to /run in the image (Debian's), so a mount
    under one is a mount under the other."""
    return "/run" + path[len("/var/run"):] if _within(path, "/var/run") else path


def _claim(taken: dict[str, str], directory: str, what: str) -> None:
    """Takes `directory` for `what`, unless it is, holds or lies in another mount, or hides a HIDDEN one."""
    if any(_within(hidden, place) for hidden in HIDDEN for place in {directory, _same_place(directory)}):
        _refuse(f"puts {what} in {directory}, which would hide the image's or the system's files there (the "
                f"mount replaces the whole directory): use a directory of its own, like /var/run/cells/<cell>/")
    for other, whose in taken.items():
        if any(_within(here, there) or _within(there, here)  # as written, and as the container finds them
               for here, there in ((directory, other), (_same_place(directory), _same_place(other)))):
            _refuse(f"puts {what} in {directory}, which clashes with the mount of {whose} at {other} (one mount "
                    "cannot hold or lie in another): give each cell a directory of its own, like "
                    "/var/run/cells/<cell>/")
    taken[directory] = what


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _refuse(problem: str) -> None:
    raise SettingsError(f"Invalid stack configuration: {NAMESPACE}:{CELLS_KEY} {problem}")


def unmade(cells: Sequence[StackCell], *, dispatcher_namespace: str, bot_account: str, channel_url: str | None,
           ca_configmap: str | None, bot_secret: str | None) -> list[str]:
    """What each cell's cluster needs that the stack cannot make there (it deploys to its own cluster only)."""
    said = []
    for stacked in cells:
        cell = stacked.cell
        extra = [f"the bots' ServiceAccount {bot_account} (no API token mounted)",
                 *([f"the channel's CA ConfigMap {ca_configmap} (a copy of this cluster's)"] if ca_configmap else []),
                 *([f"the bots' keys' Secret {bot_secret} (k8sBotSecret)"] if bot_secret else [])]
        said.append(
            f"cell {cell.name} ({cell.api_url}, namespace {cell.namespace}): before `up`, the Secret {stacked.secret} "
            f"in {dispatcher_namespace} with keys {TOKEN_KEY} and {CA_KEY} (the replicas wait for it); in that "
            f"cluster, the namespace (Pod Security restricted) and its ResourceQuota, {', '.join(extra)}, the "
            "dispatcher's account's Role (pods create, get, list, watch, patch, delete) and tokenreviews create, "
            "and the bots' NetworkPolicy"
            + (f"; its bots dial {channel_url}, a name inside this cluster: that cluster's pods must reach it "
               "(a multi-cluster Service or mesh)" if channel_url else "")
            + " (docs/kubernetes.md, \"Several clusters\")")
    return said


def warn_removed(last: LastUp, cells: Sequence[StackCell]) -> LastUp:
    """`last`, once `removed` is warned of (the preview, the `up` and the plan say it)."""
    if said := removed(last.cell_names, cells):
        pulumi.log.warn(said)
    return last


def removed(last: Sequence[str], cells: Sequence[StackCell]) -> str:
    """What removing cells the last `up` listed (`last`, its k8sCellNames) does to their running sessions; ""
    when none was removed. The dispatcher refuses a session recorded in a cell it no longer lists
    (`k8s_cell_removed`: never launched again elsewhere) and lists no pod there, so its reaper stops none."""
    listed = {stacked.cell.name for stacked in cells}
    if not (gone := [name for name in last if name not in listed]):
        return ""
    named = ", ".join(gone)
    return (f"{NAMESPACE}:{CELLS_KEY} no longer lists cell(s) {named}, which the last `up` gave the dispatcher: from "
            f"this `up` on, its replicas no longer look up, stop or reap the sessions running there (a look-up or "
            f"stop is refused `k8s_cell_removed`), and their bot pods, the warm reserve's idle ones too, run on, "
            f"unseen, until their own deadline. Drain a cell before removing it: put {named} back in {CELLS_KEY}, "
            "set each one's max_pods to 0 (closed: new starts and the reserve go to the other cells, and its idle "
            "pods are retired), and remove it once `voicefleet status` shows none of its pods running (or "
            "`kubectl get pods -l voicefleet.io/app=bot` in its cluster's namespace lists none). Already removed "
            "undrained: in its cluster, `kubectl -n <its namespace> delete pods -l "
            "voicefleet.io/app=bot,voicefleet.io/state=idle` now, and `kubectl -n <its namespace> delete pods -l "
            "voicefleet.io/app=bot --field-selector=status.phase!=Running,status.phase!=Pending` for its sessions' "
            "pods once ended (docs/kubernetes.md, \"Several clusters\")")
