"""The rest of a bot pod's spec at admission (`pods` mode): held to what `pod_body` writes, or the API server's default.

Each field here would let a leaked dispatcher token reach what the bot holds, or where it sends it (and it runs
one container, named as the dispatcher reads its state by):

- its mounts: the identity volume at its directory, read-only, with no `subPath` or `subPathExpr` (the kubelet
  expands `$(NAME)` in `subPathExpr` from the whole env, the bots' keys among them, and writes the text in the
  container's waiting message, which the dispatcher's token reads), and EKS's token where its webhook mounts it;
- its name resolution: no `hostAliases` or `dnsConfig`, `dnsPolicy` ClusterFirst: the endpoints the stack pins
  in the env (the model service's `http://…svc`, the channel's `ws://` under a mesh) resolve as the cluster's;
- its termination message: the kubelet's default file, never the last log lines (`FallbackToLogsOnError` puts
  them in the pod's status), and no path over a file of the image;
- the default scheduler, no resource claim or topology spread, `enableServiceLinks: false`, no pod-level
  `resources`, and each container's the stack's K8S_BOT_CPU and K8S_BOT_MEMORY as requests and limits (this
  `up`'s or the last one's, each as written or as the API server stores it: quantity.py); `ephemeral-storage`,
  which a LimitRange may add, absent or the same request and limit, below EPHEMERAL_BOUND;
- a `terminationGracePeriodSeconds` of at most K8S_STOP_GRACE_SECONDS (this `up`'s or the last one's).

With a runtime class its RuntimeClass's admission adds its own node selector to a pod, which the policy cannot
read: that one is not held (stacks/k8s/bot_pods_policy.py `placement`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from dispatcher.machines.k8s.pods import CONTAINER, IDENTITY_DIR, IDENTITY_VOLUME
from stacks.k8s.bot_env_allow import EKS_TOKEN_DIR
from stacks.k8s.cel import empty, literal, off, quoted
from stacks.k8s.pool_template import dispatcher_settings
from stacks.k8s.quantity import WRITTEN, Unconvertible, canonical
from stacks.k8s.web_identity import WebIdentityVolume

# The API server's defaults for what `pod_body` leaves out (k8s.io/kubernetes pkg/apis/core/v1/defaults.go).
TERMINATION_PATH, TERMINATION_POLICY = "/dev/termination-log", "File"
SCHEDULER, DNS_POLICY = "default-scheduler", "ClusterFirst"
LEFT_TO_LIMIT_RANGES = "ephemeral-storage"
# The `ephemeral-storage` a LimitRange may give a bot, as the API server stores it (quantity.py): at most three
# digits of G or Gi, six of M or Mi, nine of k or Ki, twelve bytes, so always below 1Ti. A value in the
# exponent form (1e9) or in fractions of a byte (m) is refused.
EPHEMERAL_BOUND = "below 1Ti (at most 3 digits of G or Gi, 6 of M or Mi, 9 of k or Ki, or 12 bytes)"
EPHEMERAL = "^([0-9]{1,3}(G|Gi)|[0-9]{1,6}(M|Mi)|[0-9]{1,9}(k|Ki)|[0-9]{1,12})$"
STOP_GRACE = "stopGraceSeconds"  # the key of told_resources' K8S_STOP_GRACE_SECONDS
GRACE = re.compile(r"^[0-9]{1,9}$")


def told_resources(environment: Mapping[str, str]) -> dict[str, str]:
    """The cpu and memory the dispatcher whose env is `environment` gives every pod it makes (read back by the next
    `up`, whose policy still admits them while its replicas roll)."""
    settings = dispatcher_settings(environment)
    return {"cpu": settings.cpu, "memory": settings.memory, STOP_GRACE: str(settings.stop_grace_seconds)}


def stop_grace(environment: Mapping[str, str], last: Mapping[str, str]) -> int:
    """The longest `terminationGracePeriodSeconds` the dispatcher gives its pods: this `up`'s and the last one's
    (`last`: told_resources read back; one edited by hand is left out)."""
    told = last.get(STOP_GRACE, "")
    return max(dispatcher_settings(environment).stop_grace_seconds, int(told) if GRACE.match(told) else 0)


def admitted_quantities(*written: str | None) -> tuple[str, ...]:
    """Each quantity as written and as the API server stores it; one read back that is none (an output edited by
    hand) is left out."""
    return tuple(dict.fromkeys(form for value in written if value and WRITTEN.match(value)
                               for form in _forms(value)))


def _forms(value: str) -> tuple[str, ...]:
    try:
        return value, canonical(value)
    except Unconvertible:  # above what the stack's config lets through: read back edited
        return ()


def mounted(volume: str, path: str) -> str:
    """CEL on a mount `m`: the volume `volume` at `path`, read-only, whole."""
    return (f"(m.name == {literal(volume)} && m.mountPath == {literal(path)} && has(m.readOnly) && m.readOnly && "
            f"{empty('m.subPath')} && {empty('m.subPathExpr')} && "
            "(!has(m.mountPropagation) || m.mountPropagation == 'None'))")


def mounts(web_identity: WebIdentityVolume | None) -> str:
    """CEL on a container `c`: its mounts are `pod_body`'s (and the webhook's), no device."""
    allowed = [mounted(IDENTITY_VOLUME, IDENTITY_DIR)]
    if web_identity is not None:
        allowed.append(mounted(web_identity.name, EKS_TOKEN_DIR))
    return (f"(!has(c.volumeMounts) || c.volumeMounts.all(m, {' || '.join(allowed)})) && "
            f"{empty('c.volumeDevices')}")


def resources(cpu: Sequence[str], memory: Sequence[str]) -> str:
    """CEL on a container `c`: requests and limits the stack's cpu and memory, no claim, and a LimitRange's
    ephemeral-storage (the same request and limit) below the bound or none."""
    parts = []
    for kind in ("requests", "limits"):
        held = f"c.resources.{kind}"
        parts.append(f"has({held}) && {held}.all(k, k in ['cpu', 'memory', {literal(LEFT_TO_LIMIT_RANGES)}]) && "
                     f"'cpu' in {held} && {held}['cpu'] in {quoted(cpu)} && "
                     f"'memory' in {held} && {held}['memory'] in {quoted(memory)}")
    storage = literal(LEFT_TO_LIMIT_RANGES)
    requested, limited = f"c.resources.requests[{storage}]", f"c.resources.limits[{storage}]"
    # A LimitRange may give a request, a limit or both (each bounded), never equal ones only.
    parts.append(f"(!({storage} in c.resources.requests) || {requested}.matches({literal(EPHEMERAL)})) && "
                 f"(!({storage} in c.resources.limits) || {limited}.matches({literal(EPHEMERAL)}))")
    return f"(has(c.resources) && {empty('c.resources.claims')} && {' && '.join(parts)})"


def termination() -> str:
    """CEL on a container `c`: the kubelet's default termination message."""
    return (f"(!has(c.terminationMessagePath) || c.terminationMessagePath == {literal(TERMINATION_PATH)}) && "
            f"(!has(c.terminationMessagePolicy) || c.terminationMessagePolicy == {literal(TERMINATION_POLICY)})")


def checks(web_identity: WebIdentityVolume | None, cpu: Sequence[str], memory: Sequence[str], grace: int,
           ) -> list[tuple[str, str]]:
    """Each check's CEL on `object` with its message."""
    spec = "object.spec"
    return [
        # A twin would run a second bot on the same keys, outside what the dispatcher counts and reads the state of.
        (f"size({spec}.containers) == 1 && {spec}.containers[0].name == {literal(CONTAINER)}",
         f"a bot pod runs one container, {CONTAINER}, as the dispatcher makes it"),
        (f"{spec}.containers.all(c, {mounts(web_identity)})",
         f"a bot pod's container mounts only its identity volume {IDENTITY_VOLUME} at {IDENTITY_DIR}, read-only, "
         "whole (no subPath or subPathExpr: the kubelet expands subPathExpr from the env, the bots' keys among it)"
         + (f", and {web_identity.name} at {EKS_TOKEN_DIR} as EKS's webhook mounts it" if web_identity else "")),
        (f"!has({spec}.hostAliases) && !has({spec}.dnsConfig) && "
         f"(!has({spec}.dnsPolicy) || {spec}.dnsPolicy == {literal(DNS_POLICY)})",
         "a bot pod resolves names as the cluster does: no hostAliases or dnsConfig, and dnsPolicy "
         f"{DNS_POLICY} (the endpoints the stack gives it are the cluster's)"),
        (f"!has({spec}.terminationGracePeriodSeconds) || {spec}.terminationGracePeriodSeconds <= {grace}",
         f"a bot pod's terminationGracePeriodSeconds is at most {grace}, the dispatcher's K8S_STOP_GRACE_SECONDS"),
        (f"{spec}.containers.all(c, {termination()})",
         f"a bot pod's container keeps the default termination message ({TERMINATION_POLICY} at {TERMINATION_PATH}): "
         "no log lines in the pod's status"),
        (f"(!has({spec}.schedulerName) || {spec}.schedulerName == {literal(SCHEDULER)}) && "
         f"{empty(f'{spec}.resourceClaims')} && {empty(f'{spec}.topologySpreadConstraints')} && "
         f"!has({spec}.resources) && "
         f"has({spec}.enableServiceLinks) && {off(f'{spec}.enableServiceLinks')} && "
         f"{spec}.containers.all(c, {resources(cpu, memory)})",
         f"a bot pod is scheduled by the {SCHEDULER} with no resource claim or topology spread, takes no service "
         "links (enableServiceLinks: false), no pod-level resources, and requests and limits the stack's k8sBotCpu "
         f"and k8sBotMemory (cpu: {' or '.join(cpu)}; memory: {' or '.join(memory)}) and no ephemeral-storage but "
         f"the same request and limit {EPHEMERAL_BOUND}"),
    ]
