"""The SIP edge's image on Kubernetes: the dispatcher's, by digest, with PJSIP's wheel and, when the edge runs its
front, Debian's Kamailio, built and pushed to `k8sRegistry` beside the stack's other images.

Its Containerfile is the one the VM hosts build on their own (stacks/shared/sip_edge_host.py `containerfile`),
handed to docker-build inline (its `dockerfile.inline`, "equivalent to invoking Docker with -f -",
pulumi-docker-build provider/internal/dockerfile.go at v0.0.22). The build context is a folder of its own
whose `.dockerignore` leaves out everything: the Containerfile copies nothing, and docker-build hashes the
context's files (not an inline Containerfile: provider/internal/context.go `hashBuildContext` hashes the
Dockerfile only when it is a local file) into `contextHash`, so an empty one never rebuilds by itself. The
Containerfile's text is an input of its own, and names the dispatcher's digest: a new dispatcher image, a new
lock's PJSIP or the front turned on or off is a new edge image, and nothing else is. Its layers are cached in
the registry as the other images' are (images/component.py `registry_cache`).
"""

from __future__ import annotations

import pulumi
import pulumi_docker_build as docker_build

from images.component import BUILD_TAG, RegistryAuth, registry_cache, registry_logins
from stacks.config.sip_edge import SipEdgeSettings
from stacks.shared.sip_edge_host import containerfile

ROLE = "sip-edge"
# Relative to the program folder (infra/), as images/component.py's CONTEXT is: plans stay machine-independent.
CONTEXT = "../images/sip_edge_context"
PLATFORM = "linux/amd64"  # PJSIP's wheel is x86_64 (stacks/shared/sip_edge_host.py WHEEL_TAG)


def edge_containerfile(edge: SipEdgeSettings, dispatcher: str) -> str:
    """The shared Containerfile on `dispatcher` (an image by digest): Kamailio exactly when the edge's front runs."""
    return containerfile(dispatcher, kamailio=edge.front)


class SipEdgeImage(pulumi.ComponentResource):
    """The edge's image, pushed to `repository`; `ref` is `repository@sha256:…`."""

    ref: pulumi.Output[str]

    def __init__(self, name: str, edge: SipEdgeSettings, dispatcher: pulumi.Input[str],
                 repository: pulumi.Input[str], registry: RegistryAuth | None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:SipEdgeImage", name, None, opts)
        repo = pulumi.Output.from_input(repository)
        cache_from, cache_to = registry_cache(repo)
        image = docker_build.Image(
            name, tags=[pulumi.Output.concat(repo, ":", BUILD_TAG)],
            context={"location": CONTEXT},
            dockerfile={"inline": pulumi.Output.from_input(dispatcher).apply(
                lambda base: edge_containerfile(edge, base))},
            platforms=[docker_build.Platform(PLATFORM)], push=True,
            labels={"org.opencontainers.image.title": f"voicefleet-{ROLE}"},
            registries=registry_logins(registry) or None, cache_from=cache_from, cache_to=cache_to,
            # A pod of an older digest may still be draining its calls: the registry's rules remove old images.
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True))
        self.ref = pulumi.Output.concat(repo, "@", image.digest)
        self.register_outputs({"ref": self.ref})
