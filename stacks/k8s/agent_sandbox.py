"""agent-sandbox itself for the `agent-sandbox` mode: installed from a pinned release, or the cluster's own adopted.

`k8sAgentSandbox: install` applies the release's all-in-one manifest (`sandbox-with-extensions.yaml`: the
four CRDs, the controller's Namespace, ServiceAccount, RBAC and Deployment with `--extensions`), as
published for VERSION, through pulumi-kubernetes (`yaml/v2:ConfigFile`, which applies the CRDs before
the objects of their kinds and waits for each). The stack pins the release, it copies none of it: the
SandboxTemplate and SandboxWarmPool it makes are tested against that release's schemas
(tests/fakes/agent_sandbox_crds/), so a new VERSION is a change here, with its schemas.

`k8sAgentSandbox: adopt` (the default) installs nothing: it reads the four CRDs back (`.get`) and refuses
the `up` with one line when one of them does not serve `v1beta1`, the version the dispatcher speaks (GKE's
managed add-on served `v1alpha1` only in 2026). A CRD that is missing fails the read itself, naming the CRD.

Either way every template and pool the stack makes waits for it (`gate`), so a destroy deletes them
before the install.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes.apiextensions as k8s_apiextensions
import pulumi_kubernetes.yaml as k8s_yaml

from stacks.config.k8s import AGENT_SANDBOX_KEY as KEY
from stacks.config.k8s import INSTALL
from stacks.config.reader import SettingsError
from stacks.config.refused import reported_once

VERSION = "v0.5.6"
MANIFEST_URL = f"https://github.com/kubernetes-sigs/agent-sandbox/releases/download/{VERSION}/sandbox-with-extensions.yaml"
SERVED = "v1beta1"  # dispatcher/machines/k8s/claims.py GROUP_VERSION's version
CRDS = ("sandboxes.agents.x-k8s.io", "sandboxclaims.extensions.agents.x-k8s.io",
        "sandboxtemplates.extensions.agents.x-k8s.io", "sandboxwarmpools.extensions.agents.x-k8s.io")


def served_versions(spec: Mapping[str, Any] | None) -> list[str]:
    """The versions a CRD's spec serves (`spec.versions[].served`), in its order."""
    versions = (spec or {}).get("versions") or []
    return [str(v.get("name")) for v in versions if isinstance(v, Mapping) and v.get("served")]


def refusal(crd: str, served: Sequence[str]) -> str | None:
    """One line naming the fix when `crd` does not serve SERVED, else None."""
    if SERVED in served:
        return None
    return (f"Invalid stack configuration: the cluster's CRD {crd} serves {', '.join(served) or 'no version'}, not "
            f"{SERVED}: install agent-sandbox v0.5 or later with its extensions, or let the stack install {VERSION} "
            f"(`pulumi config set {KEY} {INSTALL}`; docs/kubernetes.md, \"The agent-sandbox mode\")")


def checked(specs: list[Any]) -> str:
    """SERVED once every CRD serves it; a refusal fails the `up` (reported once)."""
    for crd, spec in zip(CRDS, specs, strict=True):
        if (line := refusal(crd, served_versions(spec))) is not None:
            refused = SettingsError(line)
            reported_once(refused)
            raise refused
    return SERVED


class AgentSandbox(pulumi.ComponentResource):
    """The install (its objects) or the adopted CRDs (read), and `ready`: known once either is."""

    def __init__(self, name: str, choice: str, *, protect: bool, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:AgentSandbox", name, None, opts)
        if choice == INSTALL:
            # Named without VERSION: every object's name and URN derives from it, so a new version is an update
            # of each in place. A versioned name would create the new release's objects beside the old, which
            # exist already (the provider never adopts one: AlreadyExists), and then delete the old: the CRDs.
            release = k8s_yaml.v2.ConfigFile(f"{name}-release", file=MANIFEST_URL,
                                             opts=pulumi.ResourceOptions(parent=self, protect=protect))
            self.objects: tuple[pulumi.Resource, ...] = (release,)
            self.ready: pulumi.Output[str] = release.urn.apply(lambda _: SERVED)
        else:
            reads = [k8s_apiextensions.v1.CustomResourceDefinition.get(
                f"{name}-{crd}", crd, opts=pulumi.ResourceOptions(parent=self)) for crd in CRDS]
            self.objects = tuple(reads)
            self.ready = pulumi.Output.all(*(crd.spec for crd in reads)).apply(checked)
        self.register_outputs({})

    def gate(self, value: pulumi.Input[str]) -> pulumi.Output[str]:
        """`value` once agent-sandbox is there: a template's or pool's namespace, so nothing of its kinds is
        sent before the check."""
        return pulumi.Output.all(self.ready, value).apply(lambda found: str(found[1]))
