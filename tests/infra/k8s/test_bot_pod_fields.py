"""In the `pods` mode the admission policy holds the rest of a bot pod's spec to what `pod_body` writes
(stacks/k8s/bot_pod_fields.py): its mounts, its name resolution, its termination message, its scheduler, its
resources and its grace, and its security context (stacks/k8s/bot_pod_security.py). Judged by the policy's own
CEL on the pods the dispatcher of that `up` creates (tests/infra/k8s/made_pods.py), each mutated one field at a
time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.infra.helpers import component_outputs
from tests.infra.k8s.admission_cel import refusal
from tests.infra.k8s.test_bot_pods_policy import (
    DISPATCHER,
    EKS_MOUNT,
    IRSA,
    POLICY,
    container,
    created,
    dispatchers_pods,
    irsa_mutated,
    policy_of,
    spec_of,
    up,
)
from tests.infra.k8s.test_model_service import model_program, named

OPTIONS: dict[str, dict[str, str]] = {
    "the stack's channel certificate": {},
    "a mesh's mTLS (no CA)": {"k8sChannelTls": "cilium"},
    "an EKS role": {"botPermissions": IRSA},
    "a runtime class": {"k8sRuntimeClass": "gvisor"},
    "half a core and 1024Mi": {"k8sBotCpu": "0.5", "k8sBotMemory": "1024Mi"},
}
MOUNTS = "a bot pod's container mounts only its identity volume"
RESOLVES = "a bot pod resolves names as the cluster does"
TERMINATION = "a bot pod's container keeps the default termination message"
SCHEDULED = "a bot pod is scheduled by the default-scheduler"
VOLUMES = "a bot pod's only volumes are projected identity tokens"
GRACE = "a bot pod's terminationGracePeriodSeconds is at most"
SECCOMP = "a bot pod runs under the RuntimeDefault seccomp profile"
ROOT = "a bot pod sets no sysctls and runs in no root group or user"
LINUX = "a bot pod runs on Linux"
CONFINED = "a bot pod runs under the RuntimeDefault AppArmor profile and no SELinux options"
PLACED = "a bot pod names no node, affinity"


def context(pod: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = spec_of(pod)["securityContext"]
    return found


def ephemeral(requests: str, limits: str | None) -> Callable[[dict[str, Any]], object]:
    def change(pod: dict[str, Any]) -> None:
        container(pod)["resources"]["requests"]["ephemeral-storage"] = requests
        if limits is not None:
            container(pod)["resources"]["limits"]["ephemeral-storage"] = limits
    return change


def mount(pod: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = container(pod)["volumeMounts"][0]
    return found


def the_keys_in_a_sub_path(pod: dict[str, Any]) -> None:
    """The kubelet expands subPathExpr from the whole env and writes the text into the container's waiting
    message, which the dispatcher's token reads (and a session's failure copies)."""
    mount(pod)["subPathExpr"] = "$(OPENAI_API_KEY)/$(DAILY_API_KEY)"


def identity_token(pod: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = spec_of(pod)["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    return found


def ca_source(pod: dict[str, Any]) -> dict[str, Any]:
    """The channel's CA ConfigMap, projected beside the token (the stack's own channel certificate)."""
    found: dict[str, Any] = spec_of(pod)["volumes"][0]["projected"]["sources"][1]["configMap"]
    return found


MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], object], str]] = {
    "a twin of the bot's container": (lambda pod: spec_of(pod)["containers"].append(
        {**container(pod), "name": "twin"}), "a bot pod runs one container"),
    "the bot's container renamed": (lambda pod: container(pod).update(name="other"), "a bot pod runs one container"),
    "a subPathExpr reading the keys": (the_keys_in_a_sub_path, MOUNTS),
    "a subPath": (lambda pod: mount(pod).update(subPath="token"), MOUNTS),
    "the identity mounted writable": (lambda pod: mount(pod).update(readOnly=False), MOUNTS),
    "the identity mounted over another path": (lambda pod: mount(pod).update(mountPath="/etc/ssl/certs"), MOUNTS),
    "a second mount of the identity": (lambda pod: container(pod)["volumeMounts"].append(
        {"name": "voicefleet-identity", "mountPath": "/app", "readOnly": True}), MOUNTS),
    "a propagated mount": (lambda pod: mount(pod).update(mountPropagation="HostToContainer"), MOUNTS),
    "a block device": (lambda pod: container(pod).update(
        volumeDevices=[{"name": "voicefleet-identity", "devicePath": "/dev/x"}]), MOUNTS),
    "the identity volume under another name": (lambda pod: spec_of(pod)["volumes"][0].update(name="other"), VOLUMES),
    "the identity token at another path": (lambda pod: identity_token(pod).update(path="other"), VOLUMES),
    "an identity token living a year": (lambda pod: identity_token(pod).update(expirationSeconds=31536000), VOLUMES),
    "the CA's ConfigMap projected whole": (lambda pod: ca_source(pod).pop("items"), VOLUMES),
    "the CA's key at another path": (lambda pod: ca_source(pod)["items"][0].update(path="../token"), VOLUMES),
    # The endpoints the stack pins in the env (the model service's http://…svc, a channel's ws:// under a mesh).
    "a host alias": (lambda pod: spec_of(pod).update(
        hostAliases=[{"ip": "203.0.113.7", "hostnames": ["voicefleet-model.voicefleet-model.svc"]}]), RESOLVES),
    "a name server of its own": (lambda pod: spec_of(pod).update(
        dnsPolicy="None", dnsConfig={"nameservers": ["203.0.113.7"]}), RESOLVES),
    "a search domain of its own": (lambda pod: spec_of(pod).update(dnsConfig={"searches": ["evil.example"]}),
                                   RESOLVES),
    "the node's resolver": (lambda pod: spec_of(pod).update(dnsPolicy="Default"), RESOLVES),
    # The bot's last log lines in the pod's status, or the message file over one of the image's.
    "log lines as the termination message": (
        lambda pod: container(pod).update(terminationMessagePolicy="FallbackToLogsOnError"), TERMINATION),
    "the termination message over a file": (
        lambda pod: container(pod).update(terminationMessagePath="/etc/ssl/certs/ca-certificates.crt"), TERMINATION),
    "a scheduler of its own": (lambda pod: spec_of(pod).update(schedulerName="nobody"), SCHEDULED),
    "a resource claim": (lambda pod: spec_of(pod).update(
        resourceClaims=[{"name": "gpu", "resourceClaimName": "gpu"}]), SCHEDULED),
    "a container's claim": (lambda pod: container(pod)["resources"].update(claims=[{"name": "gpu"}]), SCHEDULED),
    "a topology spread": (lambda pod: spec_of(pod).update(topologySpreadConstraints=[
        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule"}]), SCHEDULED),
    "service links": (lambda pod: spec_of(pod).update(enableServiceLinks=True), SCHEDULED),
    "more cores": (lambda pod: container(pod)["resources"]["limits"].update(cpu="64"), SCHEDULED),
    "a smaller request": (lambda pod: container(pod)["resources"]["requests"].update(memory="1Mi"), SCHEDULED),
    "no limits": (lambda pod: container(pod)["resources"].pop("limits"), SCHEDULED),
    "a GPU": (lambda pod: container(pod)["resources"]["limits"].update({"nvidia.com/gpu": "1"}), SCHEDULED),
    # Pod-level resources (PodLevelResources) are read before the container's: any request would pass.
    "pod-level resources": (lambda pod: spec_of(pod).update(resources={
        "requests": {"cpu": "64", "memory": "256Gi"}, "limits": {"cpu": "64", "memory": "256Gi"}}), SCHEDULED),
    "a petabyte of ephemeral storage": (ephemeral("1Pi", "1Pi"), SCHEDULED),
    "a terabyte of ephemeral storage": (ephemeral("1000Gi", "1000Gi"), SCHEDULED),
    "ephemeral storage in the exponent form": (ephemeral("1e9", "1e9"), SCHEDULED),
    "an ephemeral storage limit past the bound": (ephemeral("2Gi", "900Ti"), SCHEDULED),
    "a grace of years": (lambda pod: spec_of(pod).update(terminationGracePeriodSeconds=10 ** 9), GRACE),
    "a grace past the dispatcher's": (lambda pod: spec_of(pod).update(terminationGracePeriodSeconds=31), GRACE),
    "a node's seccomp profile": (lambda pod: container(pod)["securityContext"].update(
        seccompProfile={"type": "Localhost", "localhostProfile": "profiles/permissive.json"}), SECCOMP),
    "a node's seccomp profile for the pod": (lambda pod: context(pod).update(
        seccompProfile={"type": "Localhost", "localhostProfile": "profiles/permissive.json"}), SECCOMP),
    "no seccomp profile": (lambda pod: spec_of(pod).pop("securityContext"), SECCOMP),
    "a sysctl": (lambda pod: context(pod).update(
        sysctls=[{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]), ROOT),
    "root's group": (lambda pod: context(pod).update(runAsGroup=0), ROOT),
    "root's group for the container": (lambda pod: container(pod)["securityContext"].update(runAsGroup=0), ROOT),
    "root's group for the volumes": (lambda pod: context(pod).update(fsGroup=0), ROOT),
    "root's group beside": (lambda pod: context(pod).update(supplementalGroups=[1000, 0]), ROOT),
    "root's user": (lambda pod: container(pod)["securityContext"].update(runAsUser=0), ROOT),
    "a Windows pod": (lambda pod: spec_of(pod).update(os={"name": "windows"}), LINUX),
    # DefaultTolerationSeconds adds its tolerations with their seconds; without them a pod stays on a lost node.
    "an unreachable node tolerated for ever": (lambda pod: spec_of(pod).update(tolerations=[
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]), PLACED),
    "an unreachable node tolerated for ages": (lambda pod: spec_of(pod).update(tolerations=[
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 2**62}]), PLACED),
    "a node's AppArmor profile": (lambda pod: context(pod).update(
        appArmorProfile={"type": "Localhost", "localhostProfile": "loose"}), CONFINED),
    "a node's AppArmor profile for the container": (lambda pod: container(pod)["securityContext"].update(
        appArmorProfile={"type": "Localhost", "localhostProfile": "loose"}), CONFINED),
    "an AppArmor annotation": (lambda pod: pod["metadata"].setdefault("annotations", {}).update(
        {"container.apparmor.security.beta.kubernetes.io/bot": "localhost/loose"}), CONFINED),
    "another pod's SELinux categories": (lambda pod: context(pod).update(
        seLinuxOptions={"type": "container_t", "level": "s0:c123,c456"}), CONFINED),
}


@pytest.mark.parametrize("option", list(OPTIONS))
def test_the_dispatchers_pods_are_admitted_in_every_option(option: str) -> None:
    run = up(None, **OPTIONS[option])
    for pod in dispatchers_pods(run):
        pod = irsa_mutated(pod) if option == "an EKS role" else pod
        assert refusal(policy_of(run), created(DISPATCHER, pod)) is None, option


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_field_the_dispatcher_does_not_write_is_refused(mutation: str) -> None:
    change, message = MUTATIONS[mutation]
    run = up()
    for pod in dispatchers_pods(run):
        change(pod)
        assert message in str(refusal(policy_of(run), created(DISPATCHER, pod))), mutation


def test_the_model_services_address_cannot_be_aliased() -> None:
    run = model_program()
    policy = named(run, POLICY, "voicefleet-k8s-test-bots-made-by-the-dispatcher")["spec"]
    for pod in dispatchers_pods(run):
        assert refusal(policy, created(DISPATCHER, pod)) is None
        MUTATIONS["a host alias"][0](pod)
        assert RESOLVES in str(refusal(policy, created(DISPATCHER, pod)))


@pytest.mark.parametrize("change", ["a subPathExpr", "another path", "writable"])
def test_the_webhooks_mount_is_admitted_only_as_it_makes_it(change: str) -> None:
    run = up(botPermissions=IRSA)
    for pod in dispatchers_pods(run):
        mutated = irsa_mutated(pod)
        (webhooks,) = [each for each in container(mutated)["volumeMounts"] if each["name"] == "aws-iam-token"]
        webhooks.update({"a subPathExpr": {"subPathExpr": "$(OPENAI_API_KEY)"}, "another path": {"mountPath": "/app"},
                         "writable": {"readOnly": False}}[change])
        assert MOUNTS in str(refusal(policy_of(run), created(DISPATCHER, mutated)))
    # Without a role, the webhook's mount is no more admitted than its volume.
    plain = up()
    pod = dispatchers_pods(plain)[0]
    container(pod)["volumeMounts"].append({"name": "voicefleet-identity", "readOnly": True, "mountPath": EKS_MOUNT})
    assert MOUNTS in str(refusal(policy_of(plain), created(DISPATCHER, pod)))


def test_quantities_are_admitted_as_the_api_server_stores_them() -> None:
    """The API server writes a quantity back canonically before validation: 0.5 as 500m, 1024Mi as 1Gi."""
    run = up(k8sBotCpu="0.5", k8sBotMemory="1024Mi")
    for pod in dispatchers_pods(run):
        for kind in ("requests", "limits"):
            container(pod)["resources"][kind] = {"cpu": "500m", "memory": "1Gi"}
        assert refusal(policy_of(run), created(DISPATCHER, pod)) is None
        container(pod)["resources"]["limits"]["cpu"] = "1"
        assert SCHEDULED in str(refusal(policy_of(run), created(DISPATCHER, pod)))


@pytest.mark.parametrize("storage", ["2Gi", "999Gi", "500M", "999999Mi", "1073741824"])
def test_a_limit_ranges_ephemeral_storage_is_admitted_below_the_bound(storage: str) -> None:
    """A LimitRange gives the same request and limit (the API server copies a lone limit), a request alone
    (its `defaultRequest`), or a request under a larger limit (`defaultRequest` and `default`)."""
    run = up()
    for given in (ephemeral(storage, storage), ephemeral(storage, None), ephemeral("1Gi", storage)):
        for pod in dispatchers_pods(run):
            given(pod)
            assert refusal(policy_of(run), created(DISPATCHER, pod)) is None


def test_the_last_ups_stop_grace_is_admitted_while_replicas_roll() -> None:
    last = {"botNamespace": "voicefleet-bots", "dispatcherNamespace": "voicefleet"}
    (session, _) = dispatchers_pods(up())
    session["spec"]["terminationGracePeriodSeconds"] = 60
    moved = up({**last, "botResources": {"cpu": "1", "memory": "1Gi", "stopGraceSeconds": "60"}})
    assert refusal(policy_of(moved), created(DISPATCHER, session)) is None
    for edited in ("60' || true || '", "-1", "²"):
        kept = up({**last, "botResources": {"cpu": "1", "memory": "1Gi", "stopGraceSeconds": edited}})
        assert GRACE in str(refusal(policy_of(kept), created(DISPATCHER, session)))


def test_the_last_ups_resources_are_admitted_while_replicas_roll() -> None:
    """A pod an old replica makes after the policy's update still carries the last `up`'s cpu; the `up` after
    it admits it no more."""
    last = {"botNamespace": "voicefleet-bots", "dispatcherNamespace": "voicefleet"}
    first = up(k8sBotCpu="2", k8sBotMemory="4Gi")
    told = component_outputs(first, "k8s")["botResources"]
    assert told == {"cpu": "2", "memory": "4Gi", "stopGraceSeconds": "30"}
    (session, _) = dispatchers_pods(first)
    moved = up({**last, "botResources": told})
    assert refusal(policy_of(moved), created(DISPATCHER, session)) is None
    assert all(refusal(policy_of(moved), created(DISPATCHER, pod)) is None for pod in dispatchers_pods(moved))
    after = up({**last, "botResources": component_outputs(moved, "k8s")["botResources"]})
    assert SCHEDULED in str(refusal(policy_of(after), created(DISPATCHER, session)))
    # One edited by hand is left out, never written into the policy.
    edited = up({**last, "botResources": {"cpu": "1' || true || '", "memory": "4Gi"}})
    assert SCHEDULED in str(refusal(policy_of(edited), created(DISPATCHER, session)))
