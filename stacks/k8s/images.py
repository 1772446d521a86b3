"""A k8s stack with `k8sRegistry` builds its images with the component every cloud stack builds with.

images/component.py builds them as on AWS, GCP and Azure (the same Dockerfiles and targets, the bot's
project folder and budget, its VAD model baked in, a non-root user, the revision tag) and names each by
digest; this module says only where they go and which bot image the cluster runs. Each role's
repository is `<k8sRegistry>/<prefix>-<role>` (an ECR registry needs the repositories made beforehand,
or create-on-push; GHCR, Artifact Registry, ACR and Harbor make them at the first push).

One bot image runs every session on k8s (docs/kubernetes.md, "One bot image runs every session"): the
Daily one, which then keeps SmallWebRTC's packages when the dispatcher offers both; or SmallWebRTC's
alone when that is all it offers (agent-sandbox with a relay, or a bot.py that builds it only).
"""

from __future__ import annotations

from typing import Any

import pulumi

from images.bot_transports import IMAGE_LEAVES_OUT
from images.component import Images, ImagesArgs, RegistryAuth
from stacks.config.bot import image_args, web_transports
from stacks.config.model import Settings
from stacks.k8s.sip_edge_image import ROLE as EDGE_ROLE
from stacks.k8s.sip_edge_image import SipEdgeImage

DAILY_LEAVES_OUT = IMAGE_LEAVES_OUT["bot"][2]  # the Daily image's build argument naming the packages it drops


def repositories(settings: Settings) -> dict[str, str]:
    """Every role's repository under the stack's registry (the component picks those it builds)."""
    cfg = settings.kubernetes
    assert cfg is not None and cfg.registry is not None
    return {role: f"{cfg.registry.url}/{settings.prefix}-{role}" for role in ("bot", "bot-webrtc", "dispatcher")}


def edge_image(name: str, settings: Settings, images: Images | None,
               opts: pulumi.ResourceOptions) -> SipEdgeImage | None:
    """The SIP edge's image on the dispatcher's (stacks/k8s/sip_edge_image.py), pushed to `<k8sRegistry>/<prefix>-
    sip-edge`; None without an edge. The edge's key is refused without k8sRegistry, so `images` is then built."""
    cfg, edge = settings.kubernetes, settings.sip_edge
    if edge is None:
        return None
    assert cfg is not None and cfg.registry is not None and images is not None  # stacks/config/sip_edge.py
    repository = f"{cfg.registry.url}/{settings.prefix}-{EDGE_ROLE}"
    return SipEdgeImage(f"{name}-{EDGE_ROLE}", edge, images.dispatcher, repository, login(settings), opts=opts)


def one_bot_image(settings: Settings) -> dict[str, Any]:
    """The ImagesArgs fields of every cloud (stacks/config/bot.py image_args), for the one bot image k8s runs."""
    args = image_args(settings)
    offered = web_transports(settings) if settings.turn is not None else ("daily",)
    if "daily" not in offered or not args.get("daily", True):
        return {**args, "webrtc": True, "daily": False}
    if "webrtc" in offered:  # both transports: the Daily image keeps SmallWebRTC's packages
        args["bot_leaves_out"] = {**args.get("bot_leaves_out", {}), DAILY_LEAVES_OUT: ()}
    return {**args, "webrtc": False, "daily": True}


def login(settings: Settings) -> RegistryAuth | None:
    """The push's sign-in: the stack's credentials, or None (the deployer's own Docker login)."""
    cfg = settings.kubernetes
    assert cfg is not None and cfg.registry is not None
    found = cfg.registry.credentials
    return None if found is None else RegistryAuth(address=cfg.registry.host, username=found.username,
                                                   password=found.password)


def built_images(name: str, settings: Settings, opts: pulumi.ResourceOptions) -> Images | None:
    """The bot and dispatcher images built and pushed to `k8sRegistry`; None for images named by digest."""
    cfg = settings.kubernetes
    assert cfg is not None
    if cfg.registry is None:
        return None
    return Images(name, ImagesArgs(registry=login(settings), repositories=dict(repositories(settings)),
                                   **one_bot_image(settings)), opts=opts)
