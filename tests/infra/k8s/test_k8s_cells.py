"""A k8s stack with `k8sCells` (stacks/config/k8s_cells.py, stacks/k8s/cells.py), under Pulumi mocks: the list
read with the dispatcher's own parser and passed on as K8S_CELLS without each cell's Secret; each cell's token
and CA mounted read-only from its Secret at the paths it names; the dispatcher's RBAC unchanged; and the
refusals at preview (agent-sandbox mode, a cell without its Secret, a path clash, botSecrets)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from dispatcher.machines.k8s.cell_settings import k8s_cells
from dispatcher.machines.k8s.settings import K8sSettings
from stacks.config.k8s_cells import StackCell
from stacks.config.reader import SettingsError
from stacks.k8s.cells import removed
from stacks.k8s.last_outputs import LastUp
from stacks.tools.mocks import Deployed, Run, run_program, unwrap
from stacks.tools.plan import _diagnostics
from tests.infra.conftest import K8S_STACK_SECRETS, StackRunner, config_for
from tests.infra.k8s.conftest import container_env, pod_spec

CELLS: list[dict[str, Any]] = [
    {"name": "a", "api_url": "https://10.0.0.1", "token_file": "/var/run/cells/a/token",
     "ca_file": "/var/run/cells/a/ca.crt", "secret": "voicefleet-cell-a", "max_pods": 200},
    {"name": "b", "api_url": "https://10.1.0.1", "token_file": "/var/run/cells/b/token",
     "ca_file": "/var/run/cells/b-ca/ca.crt", "secret": "voicefleet-cell-b", "namespace": "bots-b"},
]
LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a volume's name: a DNS-1123 label


def cells_run(k8s_stack: StackRunner, cells: list[dict[str, Any]] = CELLS, **more: Any) -> Run:
    return k8s_stack(k8sCells=json.dumps(cells), **more)


def test_the_dispatcher_reads_k8s_cells_as_listed_less_each_secret(k8s_stack: StackRunner) -> None:
    env = container_env(cells_run(k8s_stack))
    written = env["K8S_CELLS"]["value"]
    bare = [{k: v for k, v in cell.items() if k != "secret"} for cell in CELLS]
    assert "voicefleet-cell" not in written and "secret" not in written
    assert k8s_cells(written, "voicefleet-bots") == k8s_cells(json.dumps(bare), "voicefleet-bots")
    # The store the cells need is the stack's (always on, by reference), and the dispatcher starts with it all.
    assert "secretKeyRef" in env["REDIS_URL"]["valueFrom"]
    plain = {name: e["value"] for name, e in env.items() if "value" in e}
    settings = K8sSettings.from_env({**plain, "BOT_IMAGE": "registry.example.com/bot@sha256:" + "b" * 64})
    assert [(c.name, c.namespace, c.max_pods) for c in settings.cells] == [("a", "voicefleet-bots", 200),
                                                                           ("b", "bots-b", None)]


def test_each_cells_token_and_ca_are_mounted_read_only_from_its_secret(k8s_stack: StackRunner) -> None:
    run = cells_run(k8s_stack)
    pod = pod_spec(run)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["cell-0-0"]["secret"] == {"secretName": "voicefleet-cell-a", "defaultMode": 0o444, "items": [
        {"key": "token", "path": "token"}, {"key": "ca.crt", "path": "ca.crt"}]}
    # b's CA is in a directory of its own: a second volume of the same Secret, still no subPath (rotation reaches it).
    assert volumes["cell-1-0"]["secret"]["items"] == [{"key": "token", "path": "token"}]
    assert volumes["cell-1-1"]["secret"] == {"secretName": "voicefleet-cell-b", "defaultMode": 0o444,
                                             "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    (container,) = pod["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert {name: (m["mountPath"], m["readOnly"]) for name, m in mounts.items() if name.startswith("cell-")} == {
        "cell-0-0": ("/var/run/cells/a", True), "cell-1-0": ("/var/run/cells/b", True),
        "cell-1-1": ("/var/run/cells/b-ca", True)}
    assert not any("subPath" in m for m in container["volumeMounts"])
    # The kubelet mounts them: the dispatcher's RBAC is what it is without cells (no Secret read granted).
    plain = k8s_stack()
    rules = sorted(json.dumps(unwrap(r.inputs).get("rules"), sort_keys=True)
                   for r in run.registrations if r.type.endswith(("/v1:Role", "/v1:ClusterRole")))
    assert rules == sorted(json.dumps(unwrap(r.inputs).get("rules"), sort_keys=True)
                           for r in plain.registrations if r.type.endswith(("/v1:Role", "/v1:ClusterRole")))
    assert not any(v["name"].startswith("cell-") for v in pod_spec(plain).get("volumes", []))


@pytest.mark.parametrize(("change", "refusal"), [
    ({"secret": None}, "cell b names no secret: the Secret in voicefleet"),
    ({"secret": "Not A Name"}, "is not a Secret's name"),
    ({"ca_file": "/var/run/cells/a/ca.crt"}, "clashes with the mount of cell a's token and ca.crt"),
    ({"token_file": "/var/run/cells/token", "ca_file": "/var/run/cells/ca.crt"}, "clashes with the mount of cell a"),
    ({"token_file": "/etc/voicefleet/token", "ca_file": "/etc/voicefleet/ca.crt"},
     "clashes with the mount of the channel's certificate"),
    ({"token_file": "/opt/token", "ca_file": "/opt/ca.crt"}, "would hide the image's or the system's files"),
    ({"token_file": "/var/run/cells/b/x", "ca_file": "/var/run/cells/b/x"}, "token_file and ca_file are one path"),
    # Compared as the kubelet reads them: a doubled, a leading double, a '.' or a trailing '/' is the same path.
    ({"token_file": "/var/run/cells/b/x", "ca_file": "/var/run/cells//b/./x"}, "token_file and ca_file are one path"),
    ({"token_file": "//etc/voicefleet/token", "ca_file": "//etc/voicefleet/ca.crt"},
     "clashes with the mount of the channel's certificate at /etc/voicefleet"),
    ({"ca_file": "/var/run/cells/./a/ca.crt"}, "in /var/run/cells/a, which clashes with the mount of cell a"),
    ({"token_file": "/var/run/cells/a//token"}, "in /var/run/cells/a, which clashes with the mount of cell a"),
    ({"token_file": "/var/run/cells/b/../a/token"}, "holds '..'"),
    ({"token_file": "/var/run/cells/b/..token"}, "starts with '..', which a Secret volume's item path may not"),
    ({"token_file": "/var/run/cells/b/token/"}, "must be an absolute path of a file"),  # the dispatcher opens it so
    # /var/run is a link to /run in the image: a mount over the ServiceAccount's parent under either name hides it
    ({"token_file": "/run/secrets/kubernetes.io/token", "ca_file": "/run/secrets/kubernetes.io/ca.crt"},
     "clashes with the mount of the pod's own ServiceAccount"),
    ({"token_file": "/var/token", "ca_file": "/var/ca.crt"}, "clashes with the mount of the pod's own ServiceAccount"),
    ({"api_url": "http://127.0.0.1:8443"}, "is plain http"),
    ({"token": "abc"}, "'token' is a credential"),
    ({"colour": "red"}, "and in a stack secret"),
])
def test_a_cell_the_stack_cannot_mount_is_refused_at_preview(k8s_stack: StackRunner, change: dict[str, Any],
                                                              refusal: str) -> None:
    second = {k: v for k, v in {**CELLS[1], **change}.items() if v is not None}
    with pytest.raises(SettingsError, match="k8sCells") as refused:
        cells_run(k8s_stack, [CELLS[0], second])
    assert refusal in str(refused.value)


def test_cells_are_refused_in_the_agent_sandbox_mode_and_beside_botsecrets(k8s_stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="k8sCells is for k8sMode pods only"):
        cells_run(k8s_stack, k8sMode="agent-sandbox", k8sDeployer="admin@example.com")
    with pytest.raises(SettingsError, match="botSecrets is written into a Secret in this cluster only"):
        cells_run(k8s_stack, secrets={**K8S_STACK_SECRETS,
                                      "voicefleet:botSecrets": json.dumps({"OPENAI_API_KEY": "SENTINEL-openai"})})
    with pytest.raises(SettingsError, match="k8sAllocatableCpu is the CPU this cluster's nodes"):
        cells_run(k8s_stack, k8sAllocatableCpu="64")


def test_volumes_are_named_by_position_whatever_the_cells_names(k8s_stack: StackRunner) -> None:
    """A cell's name may end in '-' (the dispatcher's names allow it, a volume's may not), and `b`'s second
    directory would be named as cell `b-1`'s first: by position each volume's name is a DNS-1123 label, once."""
    third = {"name": "b-1", "api_url": "https://10.2.0.1", "token_file": "/var/run/cells/b1/token",
             "ca_file": "/var/run/cells/b1/ca.crt", "secret": "voicefleet-cell-b1"}
    pod = pod_spec(cells_run(k8s_stack, [{**CELLS[0], "name": "a-"}, CELLS[1], third]))
    made = [volume for volume in pod["volumes"] if "secret" in volume and
            volume["secret"]["secretName"].startswith("voicefleet-cell-")]
    names = [volume["name"] for volume in made]
    assert names == ["cell-0-0", "cell-1-0", "cell-1-1", "cell-2-0"]
    assert all(LABEL.fullmatch(name) for name in names)
    assert [volume["secret"]["secretName"] for volume in made] == [
        "voicefleet-cell-a", "voicefleet-cell-b", "voicefleet-cell-b", "voicefleet-cell-b1"]
    (container,) = pod["containers"]
    assert [m["mountPath"] for m in container["volumeMounts"] if m["name"] in names] == [
        "/var/run/cells/a", "/var/run/cells/b", "/var/run/cells/b-ca", "/var/run/cells/b1"]


def cells_up(deployed: Deployed, cells: list[dict[str, Any]] | None) -> tuple[dict[str, Any], list[str]]:
    """The next `up` after `deployed` with `cells` (None: k8sCells unset): its outputs, and what it warns of
    removed cells."""
    overrides = {} if cells is None else {"k8sCells": json.dumps(cells)}
    with _diagnostics() as said:
        run = run_program(config_for("k8s", overrides, K8S_STACK_SECRETS), list(K8S_STACK_SECRETS),
                          stack="k8s-test", deployed=deployed)
    deployed.record(run)
    return deployed.outputs, [line for line in said if "no longer lists cell" in line]


def test_a_cell_removed_between_two_ups_is_warned_of_with_its_running_sessions_and_the_way_out() -> None:
    deployed = Deployed()
    first, warned = cells_up(deployed, CELLS)
    assert warned == []  # a first `up` removes nothing
    assert first["k8sCellNames"] == ["a", "b"]
    assert cells_up(deployed, CELLS)[1] == []  # the same cells again: nothing to say
    _, (warning,) = cells_up(deployed, CELLS[:1])
    assert "voicefleet:k8sCells no longer lists cell(s) b, which the last `up` gave the dispatcher" in warning
    assert "no longer look up, stop or reap the sessions running there" in warning
    assert "`k8s_cell_removed`" in warning and "put b back in k8sCells" in warning
    assert "set each one's max_pods to 0 (closed" in warning and "voicefleet status" in warning
    # removed already: the docs' clean-up, idle pods at once, a session's only once ended
    assert "delete pods -l voicefleet.io/app=bot,voicefleet.io/state=idle" in warning
    assert "--field-selector=status.phase!=Running,status.phase!=Pending" in warning
    assert cells_up(deployed, CELLS[:1])[1] == []  # said once: the `up` after it lists a alone
    unset, (warning,) = cells_up(deployed, None)  # every cell removed: the dispatcher is back to one cluster
    assert "no longer lists cell(s) a," in warning
    assert "k8sCellNames" not in unset and cells_up(deployed, None)[1] == []


def test_an_up_of_an_earlier_release_left_no_cell_names_to_compare_with() -> None:
    assert removed((), [StackCell(cell, "voicefleet-cell-a") for cell in k8s_cells(json.dumps(
        [_bare(CELLS[0])]), "voicefleet-bots")]) == ""
    assert LastUp.of({"k8sCellNames": ["a", 3, ""]}).cell_names == ("a",)
    assert LastUp.of({"k8sCellNames": "a"}).cell_names == ()


def _bare(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "secret"}
