"""The `pods` mode's admission policy admits exactly the pods the dispatcher builds.

The pods are the dispatcher's own `pod_body`, from the settings it reads from the environment the stack
gives it, as the API server holds them at validation time: its defaults and the DefaultTolerationSeconds
admission (on in every cluster) applied. A leaked dispatcher token, or anyone else, gets nothing more.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import kubernetes_validate
import pytest

from botchannel.contract import CHANNEL_URL_VARIABLE
from dispatcher.machines.base import LaunchSpec
from dispatcher.machines.k8s.pods import LABEL_STATE
from stacks.tools.mocks import Run, unwrap
from tests.fakes.k8s import KUBE_VERSION
from tests.infra import program_cache
from tests.infra.conftest import K8S_STACK_SECRETS, config_for
from tests.infra.helpers import component_outputs
from tests.infra.k8s.admission_cel import Call, refusal
from tests.infra.k8s.conftest import container_env
from tests.infra.k8s.made_pods import made_pods
from tests.infra.k8s.test_agent_sandbox import body

DISPATCHER = "system:serviceaccount:voicefleet:voicefleet-dispatcher"
SOMEONE = "alice@example.com"
IMAGE = "registry.example.com/bot@sha256:" + "b" * 64  # the stack's (tests/infra/conftest.py)
LAST_IMAGE = "registry.example.com/bot@sha256:" + "a" * 64
POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
# What the API server adds before validating admission: defaults, and DefaultTolerationSeconds' tolerations.
DEFAULT_TOLERATIONS = [{"key": f"node.kubernetes.io/{key}", "operator": "Exists", "effect": "NoExecute",
                        "tolerationSeconds": 300} for key in ("not-ready", "unreachable")]


def up(previous: dict[str, Any] | None = None, **overrides: str) -> Run:
    config = config_for("k8s", overrides, K8S_STACK_SECRETS)
    return program_cache.run(config, list(K8S_STACK_SECRETS), stack="k8s-test", generation=1, previous=previous)


def policy_of(run: Run) -> dict[str, Any]:
    return unwrap(run.one(POLICY).inputs)["spec"]


def stored(body: dict[str, Any]) -> dict[str, Any]:
    pod = copy.deepcopy(body)
    spec = pod["spec"]
    spec.setdefault("serviceAccountName", "default")
    spec |= {"serviceAccount": spec["serviceAccountName"], "dnsPolicy": "ClusterFirst",
             "schedulerName": "default-scheduler", "priority": 0, "preemptionPolicy": "PreemptLowerPriority",
             "tolerations": [*spec.get("tolerations", []), *DEFAULT_TOLERATIONS]}
    for container in spec["containers"]:
        container |= {"imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log",
                      "terminationMessagePolicy": "File"}
    for volume in spec.get("volumes", []):
        if "projected" in volume:
            volume["projected"].setdefault("defaultMode", 420)
    return pod


def dispatchers_pods(run: Run, image: str = IMAGE, body: Mapping[str, Any] | None = None, *,
                     channel: bool = True) -> list[dict[str, Any]]:
    """A session's pod and an idle bot's, as the dispatcher of this stack creates them (tests/infra/k8s/made_pods.py).
    `channel` False: as one with no bot channel would (the stack always gives one), whose session's pod holds the
    caller's `body`, its room and token."""
    env = {name: entry["value"] for name, entry in container_env(run).items() if "value" in entry}
    if not channel:
        env.pop(CHANNEL_URL_VARIABLE)
    return pods_of(env, image, body)


def pods_of(env: Mapping[str, str], image: str = IMAGE, body: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """A session's pod and an idle bot's, as a dispatcher with this environment creates them."""
    spec = LaunchSpec(session_id="s1", body_digest="d1", max_session_seconds=int(env["MAX_SESSION_SECONDS"]),
                      body=body or {"greeting": "hello"}, room_url="https://example.daily.co/r1", bot_token="t1",
                      ice_config={"iceServers": [{"urls": "stun:stun.example.com"}]}, image=image)
    pods = made_pods(env, image, spec, idle_seconds=float(env["RESERVE_MAX_IDLE_SECONDS"]))
    return [stored(pod) for pod in pods]


def created(user: str, pod: dict[str, Any]) -> Call:
    return Call(user, "CREATE", "", "pods", obj=pod)


def test_the_dispatchers_own_pods_are_admitted_and_nobody_elses() -> None:
    run = up()
    policy = policy_of(run)
    for pod in dispatchers_pods(run):
        assert refusal(policy, created(DISPATCHER, pod)) is None
        assert "only the dispatcher creates the bots' pods" in str(refusal(policy, created(SOMEONE, pod)))


def spec_of(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["spec"]


def container(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["spec"]["containers"][0]


MUTATIONS: dict[str, Callable[[dict[str, Any]], object]] = {
    "another image": lambda pod: container(pod).update(image="evil.example.com/miner@sha256:" + "e" * 64),
    "a tag, not the digest": lambda pod: container(pod).update(image="registry.example.com/bot:latest"),
    "a command of its own": lambda pod: container(pod).update(command=["/bin/sh", "-c", "curl …"]),
    "args of its own": lambda pod: container(pod).update(args=["--debug"]),
    "a second container": lambda pod: spec_of(pod)["containers"].append({**container(pod), "name": "x",
                                                                          "image": "busybox"}),
    "an init container": lambda pod: spec_of(pod).update(initContainers=[{"name": "i", "image": "busybox"}]),
    "the namespace's default account": lambda pod: spec_of(pod).update(serviceAccountName="default",
                                                                       serviceAccount="default"),
    "an API token mounted": lambda pod: spec_of(pod).update(automountServiceAccountToken=True),
    "automount left to the account": lambda pod: spec_of(pod).pop("automountServiceAccountToken"),
    "a token for another audience": lambda pod: spec_of(pod)["volumes"][0]["projected"]["sources"][0][
        "serviceAccountToken"].update(audience="sts.amazonaws.com"),
    "a token of the API server's audience": lambda pod: spec_of(pod)["volumes"][0]["projected"]["sources"][0][
        "serviceAccountToken"].pop("audience"),
    # The channel's CA ConfigMap is the one other source beside the token (stacks/k8s/channel_tls.py).
    "another ConfigMap projected": lambda pod: spec_of(pod)["volumes"][0]["projected"]["sources"].append(
        {"configMap": {"name": "other", "items": [{"key": "ca.crt", "path": "channel-ca.crt"}]}}),
    "a Secret projected": lambda pod: spec_of(pod)["volumes"][0]["projected"]["sources"].append(
        {"secret": {"name": "db"}}),
    "a secret volume": lambda pod: spec_of(pod)["volumes"].append({"name": "s", "secret": {"secretName": "x"}}),
    "a host path": lambda pod: spec_of(pod)["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
    "a node of its choosing": lambda pod: spec_of(pod).update(nodeName="control-plane-1"),
    "a node selector": lambda pod: spec_of(pod).update(nodeSelector={"pool": "system"}),
    "a toleration": lambda pod: spec_of(pod)["tolerations"].append({"operator": "Exists"}),
    "an affinity": lambda pod: spec_of(pod).update(affinity={"nodeAffinity": {}}),
    "the host's network": lambda pod: spec_of(pod).update(hostNetwork=True),
    "the host's processes": lambda pod: spec_of(pod).update(hostPID=True),
    # As the Priority admission leaves it: a system class preempts any other tenant's pods from a node.
    "a system priority class": lambda pod: spec_of(pod).update(priorityClassName="system-node-critical",
                                                               priority=2000001000),
    "a runtime class": lambda pod: spec_of(pod).update(runtimeClassName="runc-privileged"),
    # A hook's or an exec probe's command runs in the bot image as an entrypoint would.
    "a postStart hook": lambda pod: container(pod).update(lifecycle={"postStart": {"exec": {"command": ["sh"]}}}),
    "an exec liveness probe": lambda pod: container(pod).update(livenessProbe={"exec": {"command": ["sh"]}}),
    "a readiness probe": lambda pod: container(pod).update(readinessProbe={"exec": {"command": ["sh"]}}),
    "a startup probe": lambda pod: container(pod).update(startupProbe={"exec": {"command": ["sh"]}}),
    "a working directory of its own": lambda pod: container(pod).update(workingDir="/tmp"),
    "a Secret in its environment": lambda pod: container(pod)["env"].append(
        {"name": "K", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}),
    "a ConfigMap in its environment": lambda pod: container(pod)["env"].append(
        {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}),
    "every key of a Secret": lambda pod: container(pod).update(envFrom=[{"secretRef": {"name": "db"}}]),
    # No deadline, or one past the dispatcher's, and no label its reaper lists: a pod that runs for ever.
    "restarted for ever": lambda pod: spec_of(pod).update(restartPolicy="Always"),
    "no deadline": lambda pod: spec_of(pod).pop("activeDeadlineSeconds"),
    "a deadline past the dispatcher's": lambda pod: spec_of(pod).update(activeDeadlineSeconds=10**9),
    # Unlisted, or never started (its deadline counts from its start): nothing would end it.
    "no label the dispatcher lists it by": lambda pod: pod["metadata"].update(labels={"app": "x"}),
    "a bot label but neither session nor idle": lambda pod: pod["metadata"].update(labels={"voicefleet.io/app": "bot"}),
    "a scheduling gate": lambda pod: spec_of(pod).update(schedulingGates=[{"name": "example.com/hold"}]),
    # The reaper would count its age from this mark: set far ahead, it would never be old enough to end.
    "a claim's mark at its create": lambda pod: pod["metadata"]["annotations"].update(
        {"voicefleet.io/claimed-at": "99999999999"}),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_pod_the_dispatcher_would_not_build_is_refused_even_from_the_dispatcher(mutation: str) -> None:
    run = up()
    policy = policy_of(run)
    for pod in dispatchers_pods(run):
        MUTATIONS[mutation](pod)
        assert refusal(policy, created(DISPATCHER, pod)) is not None, mutation


def test_a_clusters_default_priority_class_is_admitted() -> None:
    """The Priority admission gives a pod that names no class the cluster's globalDefault one, name and value,
    before validation: a class of the cluster's own range (at most 1e9) is the cluster's, not the pod's, doing."""
    run = up()
    policy = policy_of(run)
    for pod in dispatchers_pods(run):
        spec_of(pod).update(priorityClassName="tenant-default", priority=1000)
        assert refusal(policy, created(DISPATCHER, pod)) is None


def test_a_webhooks_own_variable_is_refused_with_the_way_out() -> None:
    """A mutating webhook that adds a variable the dispatcher does not write (the node's address, as a monitoring
    agent's does) could as well add a proxy: refused, naming the way out."""
    run = up()
    for pod in dispatchers_pods(run):
        container(pod)["env"].append({"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}})
        assert "must leave the bots' namespace out" in str(refusal(policy_of(run), created(DISPATCHER, pod)))


ROLE = "arn:aws:iam::123456789012:role/voice-bot"
IRSA = json.dumps({"eks.amazonaws.com/role-arn": ROLE})
EKS_MOUNT = "/var/run/secrets/eks.amazonaws.com/serviceaccount"


def irsa_mutated(pod: dict[str, Any], audience: str = "sts.amazonaws.com") -> dict[str, Any]:
    """The pod as EKS's pod identity webhook patches it (amazon-eks-pod-identity-webhook pkg/handler/handler.go,
    testdata rawPodWithoutVolumes: the volume first, each container's env and mount), with the regional STS
    endpoint and region its flags may add."""
    mutated = copy.deepcopy(pod)
    token = {"audience": audience, "expirationSeconds": 86400, "path": "token"}
    spec_of(mutated)["volumes"] = [{"name": "aws-iam-token", "projected": {"sources": [{"serviceAccountToken": token}],
                                                                          "defaultMode": 420}},
                                   *spec_of(mutated).get("volumes", [])]
    for each in spec_of(mutated)["containers"]:
        each["env"] = [*each.get("env", []), *({"name": name, "value": value} for name, value in (
            ("AWS_STS_REGIONAL_ENDPOINTS", "regional"), ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_REGION", "eu-west-1"), ("AWS_ROLE_ARN", ROLE),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", f"{EKS_MOUNT}/token")))]
        each["volumeMounts"] = [*each.get("volumeMounts", []), {"name": "aws-iam-token", "readOnly": True,
                                                                 "mountPath": EKS_MOUNT}]
    return mutated


def test_with_an_eks_role_the_pods_eks_webhook_mutates_are_admitted() -> None:
    """botPermissions' IRSA role: EKS's webhook adds its STS token volume, env and mount before validation."""
    run = up(botPermissions=IRSA)
    policy = policy_of(run)
    for pod in dispatchers_pods(run):
        assert refusal(policy, created(DISPATCHER, irsa_mutated(pod))) is None


@pytest.mark.parametrize("change", ["another audience", "no role configured", "a second source", "another path",
                                    "the channel's token under the webhook's name"])
def test_the_webhooks_volume_is_admitted_only_as_it_makes_it(change: str) -> None:
    run = up() if change == "no role configured" else up(botPermissions=IRSA)
    policy = policy_of(run)
    for pod in dispatchers_pods(run):
        mutated = irsa_mutated(pod, audience="vault.example.com" if change == "another audience" else
                               "sts.amazonaws.com")
        (webhooks, *_) = spec_of(mutated)["volumes"]
        sources = webhooks["projected"]["sources"]
        if change == "a second source":
            sources.append({"secret": {"name": "db"}})
        elif change == "another path":
            sources[0]["serviceAccountToken"]["path"] = "../token"
        elif change == "the channel's token under the webhook's name":
            sources.append(copy.deepcopy(spec_of(pod)["volumes"][0]["projected"]["sources"][0]))
        assert "only volumes are projected identity tokens" in str(refusal(policy, created(DISPATCHER, mutated)))


def pod_identity_mutated(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod as EKS's webhook patches it under an EKS Pod Identity association, which it prefers to IRSA
    (amazon-eks-pod-identity-webhook pkg/handler/handler.go: the container credentials' volume and env)."""
    mutated = copy.deepcopy(pod)
    token = {"audience": "pods.eks.amazonaws.com", "expirationSeconds": 86400, "path": "eks-pod-identity-token"}
    spec_of(mutated)["volumes"] = [{"name": "eks-pod-identity-token",
                                    "projected": {"sources": [{"serviceAccountToken": token}], "defaultMode": 420}},
                                   *spec_of(mutated).get("volumes", [])]
    for each in spec_of(mutated)["containers"]:
        each["env"] = [*each.get("env", []),
                       {"name": "AWS_CONTAINER_CREDENTIALS_FULL_URI", "value": "http://169.254.170.23/v1/credentials"},
                       {"name": "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                        "value": "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"}]
    return mutated


@pytest.mark.parametrize("permissions", [None, IRSA])
def test_a_pod_identity_associations_pod_is_refused_with_the_way_out(permissions: str | None) -> None:
    run = up() if permissions is None else up(botPermissions=permissions)
    for pod in dispatchers_pods(run):
        message = str(refusal(policy_of(run), created(DISPATCHER, pod_identity_mutated(pod))))
        assert "EKS Pod Identity" in message
        assert "delete the Pod Identity association for voicefleet-bots/voicefleet-bot" in message
        assert "eks.amazonaws.com/role-arn (IRSA)" in message


@pytest.mark.parametrize(("seconds", "admitted"), [(3600, True), (86400, True), (86401, False), (None, False)])
def test_the_webhooks_token_lives_a_day_at_most(seconds: int | None, admitted: bool) -> None:
    run = up(botPermissions=IRSA)
    pod = irsa_mutated(dispatchers_pods(run)[0])
    token = spec_of(pod)["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    if seconds is None:
        token.pop("expirationSeconds")
    else:
        token["expirationSeconds"] = seconds
    assert (refusal(policy_of(run), created(DISPATCHER, pod)) is None) is admitted


def test_the_webhooks_volume_is_admitted_while_the_last_ups_role_is_still_on_the_account() -> None:
    """A role taken out: the account keeps its annotation until Access updates it, and the webhook mutates
    the pods made meanwhile. The next `up` reads the role back; the one after it admits the volume no more."""
    last = {"botNamespace": "voicefleet-bots", "dispatcherNamespace": "voicefleet"}
    named = up(botPermissions=IRSA)
    assert component_outputs(named, "k8s")["botRole"] == ROLE  # what the next `up` reads back
    dropped = up({**last, "botRole": ROLE})
    for pod in dispatchers_pods(dropped):
        assert refusal(policy_of(dropped), created(DISPATCHER, irsa_mutated(pod))) is None
    assert "botRole" not in component_outputs(dropped, "k8s")
    after = up(last)
    assert refusal(policy_of(after), created(DISPATCHER, irsa_mutated(dispatchers_pods(after)[0]))) is not None


def test_the_bots_account_names_its_role_only_once_the_policy_admits_its_volume() -> None:
    run = up(botPermissions=IRSA)
    (account,) = [r for r in run.of_type("kubernetes:core/v1:ServiceAccount") if r.name.endswith("-bot")]
    assert run.one(POLICY).urn in account.dependencies


def test_the_longest_deadline_is_the_dispatchers_and_the_last_ups_while_replicas_roll() -> None:
    """An idle bot's: RESERVE_MAX_IDLE_SECONDS and its session; a lowered cap still admits the pods the last
    `up`'s replicas launch until they have rolled."""
    env = {name: entry["value"] for name, entry in container_env(up()).items() if "value" in entry}
    longest = int(env["MAX_SESSION_SECONDS"]) + math.ceil(float(env["RESERVE_MAX_IDLE_SECONDS"]))
    pod = dispatchers_pods(up())[0]
    for deadline, previous, admitted in ((longest, None, True), (longest + 1, None, False),
                                         (longest + 600, longest + 600, True), (longest + 601, longest + 600, False)):
        spec_of(pod)["activeDeadlineSeconds"] = deadline
        last = None if previous is None else {"botNamespace": "voicefleet-bots", "dispatcherNamespace": "voicefleet",
                                              "botPodLifetime": previous}
        assert (refusal(policy_of(up(last)), created(DISPATCHER, pod)) is None) is admitted, deadline
    assert component_outputs(up(), "k8s")["botPodLifetime"] == longest  # what the next `up` reads back


def test_the_last_ups_image_is_admitted_beside_this_ones_while_replicas_roll() -> None:
    run = up(previous={"botImage": LAST_IMAGE, "botNamespace": "voicefleet-bots",
                       "dispatcherNamespace": "voicefleet"})
    policy = policy_of(run)
    for image in (IMAGE, LAST_IMAGE):
        assert all(refusal(policy, created(DISPATCHER, pod)) is None for pod in dispatchers_pods(run, image))
    first = up()  # no `up` before it: its own image alone
    assert refusal(policy_of(first), created(DISPATCHER, dispatchers_pods(first, LAST_IMAGE)[0])) is not None


def test_with_a_runtime_class_the_pods_carry_it_and_the_classs_scheduling() -> None:
    run = up(k8sRuntimeClass="gvisor")
    policy = policy_of(run)
    (session, _) = dispatchers_pods(run)
    assert refusal(policy, created(DISPATCHER, session)) is None
    # The RuntimeClass admission merges the class's scheduling into the pod before validation.
    session["spec"] |= {"nodeSelector": {"sandbox.gke.io/runtime": "gvisor"},
                        "tolerations": [*session["spec"]["tolerations"], {"key": "sandbox.gke.io/runtime",
                                                                          "value": "gvisor", "effect": "NoSchedule"}]}
    assert refusal(policy, created(DISPATCHER, session)) is None
    for other in ({"runtimeClassName": "runc"}, {"hostNetwork": True}):
        assert refusal(policy, created(DISPATCHER, {**session, "spec": {**session["spec"], **other}})) is not None
    bare = {**session, "spec": {k: v for k, v in session["spec"].items() if k != "runtimeClassName"}}
    assert refusal(policy, created(DISPATCHER, bare)) is not None


def test_the_dispatchers_claim_changes_its_marks_and_nobody_changes_a_pods_spec() -> None:
    run = up()
    policy = policy_of(run)
    _, idle = dispatchers_pods(run)
    claimed = copy.deepcopy(idle)
    claimed["metadata"]["labels"] |= {LABEL_STATE: "session", "voicefleet.io/session": "s2"}
    claimed["metadata"]["annotations"] |= {"voicefleet.io/body-digest": "d", "voicefleet.io/claimed-at": "1"}
    assert refusal(policy, Call(DISPATCHER, "UPDATE", "", "pods", obj=claimed, old=idle)) is None
    assert "voicefleet.io/ labels" in str(refusal(policy, Call(SOMEONE, "UPDATE", "", "pods", obj=claimed, old=idle)))
    swapped = copy.deepcopy(idle)
    container(swapped)["image"] = "evil.example.com/miner@sha256:" + "e" * 64
    for user in (DISPATCHER, SOMEONE):
        assert "nobody changes their spec" in str(refusal(policy, Call(user, "UPDATE", "", "pods", obj=swapped,
                                                                       old=idle)))


@pytest.mark.parametrize("subresource", ["exec", "attach", "portforward", "ephemeralcontainers"])
def test_nobody_enters_a_bots_pod_in_the_pods_mode_either(subresource: str) -> None:
    operation = "UPDATE" if subresource == "ephemeralcontainers" else "CONNECT"
    assert refusal(policy_of(up()), Call(DISPATCHER, operation, "", "pods", subresource, obj=None)) is not None


def test_only_the_kubelets_mint_the_bots_tokens_in_the_pods_mode_either() -> None:
    minted = Call(DISPATCHER, "CREATE", "", "serviceaccounts", "token", name="voicefleet-bot")
    assert refusal(policy_of(up()), minted) == "only the kubelets mint tokens for the bots' ServiceAccount"


def test_the_policy_is_enforced_before_the_dispatcher_makes_a_pod() -> None:
    run = up()
    deployment = run.one("kubernetes:apps/v1:Deployment")
    assert run.one(POLICY).urn in deployment.dependencies
    binding = run.one("kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding")
    assert binding.urn in deployment.dependencies
    assert unwrap(binding.inputs)["spec"]["validationActions"] == ["Deny"]
    assert {v.get("reason") for v in policy_of(run)["validations"]} == {"Forbidden"}


def test_every_object_the_pods_mode_sends_is_a_valid_kubernetes_object() -> None:
    """The policy, its binding, the namespaces, the budget, the NetworkPolicies (with ingress sources): as the
    API server's schema has them."""
    run = up(k8sIngressSources='["35.191.0.0/16", "2600:1900::/28"]')
    sent = [reg for reg in run.registrations if reg.custom and reg.type.startswith("kubernetes:")]
    assert {reg.type for reg in sent} >= {POLICY, "kubernetes:policy/v1:PodDisruptionBudget"}
    for reg in sent:
        kubernetes_validate.validate(body(reg), KUBE_VERSION, strict=True)
