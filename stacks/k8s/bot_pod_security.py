"""A bot pod's security context at admission (`pods` mode): what `pod_body` writes, where Pod Security
`restricted` leaves a choice.

`restricted` (enforced on the bots' namespace, stacks/k8s/namespaces.py) already refuses root, privilege,
capabilities and host access; it still admits what the policy holds here:

- seccomp `Localhost` (a node's profile may allow any call): the pod's is `RuntimeDefault`, as `pod_body`
  writes it, and its container's absent or the same;
- `sysctls` (`net.ipv4.ip_unprivileged_port_start` among the safe ones): none;
- group 0 (`runAsGroup`, `fsGroup`, `supplementalGroups`, at the pod's level or the container's: files the
  image leaves to root's group): never;
- a Windows pod (`spec.os`): none but `linux`, or none named.
"""

from __future__ import annotations

from stacks.k8s.cel import empty, literal

RUNTIME_DEFAULT = "RuntimeDefault"


APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"  # the profile's older form


def not_root(context: str) -> str:
    """CEL: the security context `context` (set) runs as no root group or user."""
    return (f"(!has({context}.runAsGroup) || {context}.runAsGroup != 0) && "
            f"(!has({context}.runAsUser) || {context}.runAsUser != 0)")


def checks() -> list[tuple[str, str]]:
    """Each check's CEL on `object` with its message."""
    spec, pod = "object.spec", "object.spec.securityContext"
    return [
        (f"has({pod}) && has({pod}.seccompProfile) && {pod}.seccompProfile.type == '{RUNTIME_DEFAULT}' && "
         f"{spec}.containers.all(c, !has(c.securityContext) || !has(c.securityContext.seccompProfile) || "
         f"c.securityContext.seccompProfile.type == '{RUNTIME_DEFAULT}')",
         f"a bot pod runs under the {RUNTIME_DEFAULT} seccomp profile, as the dispatcher writes it (no Localhost "
         "profile, at the pod's level or the container's)"),
        (f"{empty(f'{pod}.sysctls')} && {not_root(pod)} && (!has({pod}.fsGroup) || {pod}.fsGroup != 0) && "
         f"(!has({pod}.supplementalGroups) || !{pod}.supplementalGroups.exists(g, g == 0)) && "
         f"{spec}.containers.all(c, !has(c.securityContext) || ({not_root('c.securityContext')}))",
         "a bot pod sets no sysctls and runs in no root group or user (runAsGroup, fsGroup, supplementalGroups, "
         "runAsUser never 0)"),
        (f"!has({spec}.os) || {spec}.os.name == 'linux'",
         "a bot pod runs on Linux (spec.os absent or linux)"),
        (f"{confined(pod)} && {spec}.containers.all(c, !has(c.securityContext) || {confined('c.securityContext')}) "
         f"&& (!has(object.metadata.annotations) || "
         f"!object.metadata.annotations.exists(k, k.startsWith({literal(APPARMOR_ANNOTATION)})))",
         f"a bot pod runs under the {RUNTIME_DEFAULT} AppArmor profile and no SELinux options of its own, as the "
         "dispatcher writes it (no Localhost profile, no seLinuxOptions, no AppArmor annotation)"),
    ]


def confined(context: str) -> str:
    """CEL: the security context `context` (set) names no AppArmor profile but the runtime's, no SELinux options."""
    return (f"(!has({context}.appArmorProfile) || {context}.appArmorProfile.type == '{RUNTIME_DEFAULT}') && "
            f"!has({context}.seLinuxOptions)")
