"""Images: builds and pushes the bot and dispatcher images, exposing digest-pinned references.

Everything that runs an image uses `repo@sha256:…` (never a tag): a deploy runs exactly the bytes
that were built, and a new build shows up in review as a changed digest on the task definition or
instance template. docker-build's `ref`/`digest` are the outputs (there is no `repo_digest`).

Nothing about the commit goes into the build (no revision label or build arg, a constant tag), so
the Image's inputs, and with them its digest, change only when the build context does: a commit
that touches only docs or stacks deploys no new task definition, template or revision. The
commit is recorded as an extra tag on a separate `Index` that points at the built image: a new
revision re-tags, it never rebuilds.

What a build pushes: the image (one manifest for one platform; for several, an index with one
manifest per platform) and its registry cache. No attestation: docker-build passes buildx
`Attests: {"provenance": nil}` (pulumi-docker-build provider/internal/client.go, "Disable default
provenance for now", at v0.0.22), and buildx's `toSolveOpt` drops a nil attestation, so the
`mode=min` provenance the docker CLI adds by default is never asked for.

The bot images also carry a label with the digest of the bot project's files (images/project_files.py):
docker-build's own context hash reads the project folder through the repository's allow-list
`.dockerignore` and would see an edit of bot.py as no change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build

from images import project_files
from images.bot_project import BotProjectError
from images.bot_transports import IMAGE_LEAVES_OUT

# Paths are relative, so plans and state do not depend on the machine that built them, and relative
# to the program folder (Pulumi.yaml's `main`, infra/): Pulumi starts every provider plugin with
# the program's working directory, and docker-build resolves them from there. The build context is
# the repository root.
CONTEXT = ".."
PROGRAM_FOLDER = Path(__file__).resolve().parent.parent / "infra"  # where the relative paths start
# role -> (Dockerfile, target). bot-webrtc is built only for stacks with a TURN relay.
DOCKERFILES = {"bot": ("../images/bot.Dockerfile", "runtime"),
               "dispatcher": ("../images/dispatcher.Dockerfile", "runtime"),
               "bot-webrtc": ("../images/bot.Dockerfile", "runtime-webrtc")}
BOT_PROJECT_CONTEXT = "bot-project"  # images/bot.Dockerfile's `from=bot-project`
CACHE_TAG = "buildcache"
BUILD_TAG = "latest"  # constant on purpose: the revision is an extra tag (see the module docstring)
# The revision's tag is rev-<revision>: a registry's lifecycle rule can select revision indexes by
# this prefix and keep them apart from the builds they point at (stacks/aws/registry.py).
REVISION_TAG_PREFIX = "rev-"
# A release's tag is release-<name> (stacks/config/releases.py names releases), on the bot images
# of the release an `up` deploys: ECR keeps the images of the newest releases by this prefix
# (stacks/aws/registry.py), one tag per release, however many manifests a build pushes.
RELEASE_TAG_PREFIX = "release-"


@dataclass(frozen=True)
class RegistryAuth:
    address: pulumi.Input[str]  # registry host, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com
    username: pulumi.Input[str]
    password: pulumi.Input[str]  # held in memory by docker-build, never written to state in clear


@dataclass(frozen=True)
class ImagesArgs:
    # None: docker-build signs in as the deployer's own Docker does (`docker login`, a credential helper);
    # a k8s stack whose registry the stack is given no credentials for (stacks/config/k8s_registry.py).
    registry: RegistryAuth | None
    repositories: dict[str, pulumi.Input[str]]  # "bot"/"dispatcher" -> repository URL (no tag)
    source_revision: str  # "" = no revision tag
    platforms: Sequence[str] = ("linux/amd64",)
    build_on_preview: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    webrtc: bool = False  # also build the SmallWebRTC bot (repositories then has "bot-webrtc")
    # Build the Daily bot image. False for a project whose bot.py builds SmallWebRTC only
    # (BotProject.images): that image would serve nothing of it, and its SmallWebRTC image is then
    # the bot every runtime runs (a Daily session fails with it, as the plan warns).
    daily: bool = True
    # The user's bot project folder (voicefleet:botProject, checked by images/bot_project.py),
    # relative to the program folder like CONTEXT: the bot images' second build context,
    # `bot-project`; and its packages to leave out (BOT_EXCLUDE_PACKAGES).
    bot_project: str = "../examples/parrot"
    bot_exclude_packages: Sequence[str] = ()
    # Each bot image's transport packages to leave out (images/bot_transports.py: BotProject.leaves_out,
    # the packages of a transport bot.py imports at module level stay), by build argument.
    bot_leaves_out: Mapping[str, Sequence[str]] = field(default_factory=lambda: {
        argument: packages for _, packages, argument in IMAGE_LEAVES_OUT.values()})
    # The bot images' layer compression ("": the builder's gzip). "zstd" on AWS: Fargate pulls every
    # task's image afresh, and zstd layers cut its task start by up to 27 % in AWS's tests (AWS
    # containers blog, "Reducing AWS Fargate Startup Times with zstd Compressed Container Images").
    bot_compression: str = ""


ZSTD_LEVEL = 3  # zstd's default level; any level > 0 makes docker-build pass the compression on


class Images(pulumi.ComponentResource):
    """The bot and dispatcher images, built from the repository root and pushed by digest."""

    bot: pulumi.Output[str]  # a Daily (or WebSocket) session's image: the SmallWebRTC one when no Daily one is built
    daily: bool  # whether `bot` is the Daily image
    dispatcher: pulumi.Output[str]
    bot_webrtc: pulumi.Output[str] | None

    def __init__(self, name: str, args: ImagesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:images:Images", name, None, opts)
        refs: dict[str, pulumi.Output[str]] = {}
        self._name = name
        self._registries: dict[str, docker_build.RegistryArgsDict | None] = {}
        self._repositories: dict[str, pulumi.Output[str]] = {}
        bot_labels = {project_files.DIGEST_LABEL: _project_digest(args.bot_project)}
        for role, (dockerfile, target) in DOCKERFILES.items():
            if (role == "bot-webrtc" and not args.webrtc) or (role == "bot" and not args.daily):
                continue
            repository = pulumi.Output.from_input(args.repositories[role])
            registries = registry_logins(args.registry)
            cache_from, cache_to = registry_cache(repository)
            context: docker_build.BuildContextArgsDict = {"location": CONTEXT}
            build_args: dict[str, str] = {}
            labels = {"org.opencontainers.image.title": f"voicefleet-{role}", **args.labels}
            zstd = role.startswith("bot") and args.bot_compression == "zstd"
            if role.startswith("bot"):
                context["named"] = {BOT_PROJECT_CONTEXT: {"location": args.bot_project}}
                build_args["BOT_EXCLUDE_PACKAGES"] = " ".join(args.bot_exclude_packages)
                # Both variants' arguments on both builds: build-webrtc is FROM build, whose layers they share.
                build_args |= {argument: " ".join(packages) for argument, packages in args.bot_leaves_out.items()}
                labels |= bot_labels  # an input Diff compares, so a bot change rebuilds
            image = docker_build.Image(
                f"{name}-{role}",
                tags=[pulumi.Output.concat(repository, ":", BUILD_TAG)],
                context=context,
                build_args=build_args or None,
                dockerfile={"location": dockerfile},
                target=target,
                platforms=[docker_build.Platform(p) for p in args.platforms],
                push=not zstd,
                # docker-build's registry export (exports[].registry: compression, forceCompression,
                # ociMediaTypes): every layer re-compressed, base layers too, pushed to the tags. The
                # level must be set: the provider drops compression and force-compression when it is 0,
                # its default (pulumi-docker-build provider/internal/export.go, ExportWithCompression
                # .String: `if e.CompressionLevel == 0 { return "" }`, export.go:519-522 at v0.0.22).
                # 3 is zstd's own default level (buildkit maps 3-6 to "Default").
                exports=[{"registry": {"compression": docker_build.CompressionType.ZSTD,
                                       "compression_level": ZSTD_LEVEL, "force_compression": True,
                                       "oci_media_types": True}}] if zstd else None,
                build_on_preview=args.build_on_preview,
                labels=labels,
                registries=registries or None,
                cache_from=cache_from,
                cache_to=cache_to,
                # An older digest may still be running (a bot mid-session); the registry's
                # lifecycle policy removes old images, not `pulumi destroy`/replace.
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
            refs[role] = pulumi.Output.concat(repository, "@", image.digest)
            self._registries[role], self._repositories[role] = next(iter(registries), None), repository
            if args.source_revision:
                docker_build.Index(f"{name}-{role}-revision",
                                   tag=pulumi.Output.concat(repository, ":", REVISION_TAG_PREFIX, args.source_revision),
                                   sources=[refs[role]], push=True, registry=next(iter(registries), None),
                                   opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True))
        self.daily = "bot" in refs
        self.bot = refs["bot"] if self.daily else refs["bot-webrtc"]
        self.dispatcher = refs["dispatcher"]
        self.bot_webrtc = refs.get("bot-webrtc")
        self._refs = refs
        self.register_outputs({"bot": self.bot, "dispatcher": self.dispatcher, "bot_webrtc": self.bot_webrtc})

    def tag_release(self, release: pulumi.Input[str]) -> list[docker_build.Index]:
        """Tags this `up`'s bot images `release-<release>`, as a revision is tagged: an index naming
        the image by digest (for a multi-platform build, imagetools gives back the build's own index).
        One resource per image role, so a new release re-tags and the old tag stays in the registry
        (`retain_on_delete`) until the registry's rule lets it go: a release dropped from the list
        must still start while the dispatcher that lists it is being replaced."""
        return [docker_build.Index(f"{self._name}-{role}-release",
                                   tag=pulumi.Output.concat(self._repositories[role], ":", RELEASE_TAG_PREFIX, release),
                                   sources=[self._refs[role]], push=True, registry=self._registries[role],
                                   opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True))
                for role in self._refs if role.startswith("bot")]


def registry_logins(registry: RegistryAuth | None) -> list[docker_build.RegistryArgsDict]:
    """docker-build's `registries`: the stack's sign-in, its password a secret; none for the deployer's own login."""
    return [] if registry is None else [{"address": registry.address, "username": registry.username,
                                         "password": pulumi.Output.secret(registry.password)}]


def registry_cache(repository: pulumi.Output[str]) -> tuple[list[docker_build.CacheFromArgsDict],
                                                               list[docker_build.CacheToArgsDict]]:
    """docker-build's cache_from and cache_to: the repository's CACHE_TAG, every layer (mode max). ECR only
    accepts registry caches as OCI image manifests; Artifact Registry takes them too, so one shape serves both."""
    cache = pulumi.Output.concat(repository, ":", CACHE_TAG)
    return ([{"registry": {"ref": cache}}],
            [{"registry": {"ref": cache, "image_manifest": True, "oci_media_types": True,
                           "mode": docker_build.CacheMode.MAX}}])


def _project_digest(location: str) -> str:
    """The digest of the bot project's files; a project that cannot be read stops the program with
    the reason and no traceback."""
    try:
        return project_files.digest(PROGRAM_FOLDER / location)
    except BotProjectError as error:
        raise pulumi.RunError(f"bot project {location}: {error}") from None
