"""The user's bot in a stack: `botProject` (the folder the bot image is built from) and `botSecrets`.

`botProject` is checked here, at `pulumi preview`, by images/bot_project.py: a folder the image
build could not serve (no bot.py, no lock, a Pipecat outside the supported range) fails the program
with one message naming the file, before any image is built.

`botSecrets` is the bot's named set of service keys (STT, LLM, TTS, telephony): an object of
environment variable names to values, each set with
`pulumi config set --secret --path 'botSecrets.DEEPGRAM_API_KEY' …`. Every entry becomes a secret in
the cloud's secret store and reaches the bot by reference (stacks/aws/secrets.py,
stacks/gcp/secrets.py), exactly as the three provider keys always did; the names stay readable in
the stack file, the values only encrypted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import pulumi

from dispatcher.machines.bot_variables import refusal
from dispatcher.machines.k8s.settings import AGENT_SANDBOX
from images.bot_project import BotProject, BotProjectError, read
from images.bot_transports import IMAGE_LEAVES_OUT
from images.budgets import allowance_mb, budget_to_set, judge
from images.component import CONTEXT
from images.size_prediction import predict_image
from stacks.config.carriers import credential_advice
from stacks.config.reader import Reader

# The folder of Pulumi.yaml, where relative botProject paths start (the program runs in infra/).
PULUMI_PROJECT_ROOT = Path(__file__).resolve().parents[2]
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,127}$")


class HasMode(Protocol):
    @property
    def mode(self) -> str: ...


class HasBotProject(Protocol):
    @property
    def bot_project(self) -> BotProjectSettings | None: ...

    @property
    def kubernetes(self) -> HasMode | None: ...

    @property
    def turn(self) -> object | None: ...

    @property
    def cloud(self) -> str: ...


class BuildsImages(HasBotProject, Protocol):
    """What of the settings decides the images (stacks/config/model.py Settings has it all)."""

    @property
    def source_revision(self) -> str: ...

    @property
    def platforms(self) -> tuple[str, ...]: ...

    @property
    def build_on_preview(self) -> bool: ...


@dataclass(frozen=True)
class BotProjectSettings:
    """The bot image's project; `location` is the build's `bot-project` context, as docker-build reads it
    (relative to the program folder, infra/); `configured`, botProject as the stack file gives it, which
    every message names (relative to the repository root, as the operator wrote it)."""

    location: str
    project: BotProject
    configured: str = ""


def project(cfg: Reader) -> BotProjectSettings:
    """A relative path starts at the folder of Pulumi.yaml (the repository root). The build context
    is named relative to the program folder (images/component.py CONTEXT), so it stays relative and
    the plan and state do not depend on the machine that ran them."""
    configured = cfg.string("botProject")
    path = Path(configured)
    try:
        found = read(path if path.is_absolute() else PULUMI_PROJECT_ROOT / path)
    except BotProjectError as error:
        raise cfg.fail("botProject", f"= {configured!r}: {error}") from None
    location = configured if path.is_absolute() else str(PurePosixPath(CONTEXT) / PurePosixPath(path.as_posix()))
    return BotProjectSettings(location=location, project=found, configured=configured)


# What a stack offers, by the Pipecat transport that serves it, in the order the plan names them.
OFFERED = {"daily": "Daily web sessions (POST /start)", "websocket": "phone calls",
           "webrtc": "SmallWebRTC web sessions (over the TURN relay)"}


def check(cfg: Reader, settings: HasBotProject, *, takes_calls: bool = False, drain: bool = False) -> None:
    """A TURN relay means SmallWebRTC sessions, whose image needs Pipecat's webrtc extra (aiortc); a
    carrier's credentials mean phone calls, whose bots need its websocket extra (FastAPI), unless bot.py
    shows it builds other transports only. A stack must serve something the bot builds, and the plan
    names only what it serves."""
    found = settings.bot_project
    if found is None:
        return
    web = web_transports(settings) if settings.turn is not None else ("daily",)
    offered = tuple(transport for transport in OFFERED
                    if transport in web or (transport == "websocket" and takes_calls))
    built = found.project.built
    locks_aiortc = "webrtc" in found.project.transports
    if settings.turn is not None and built and "webrtc" not in built:
        # Its SmallWebRTC image (aiortc locked or not) would serve no session: the relay is what is wrong.
        image = ("its SmallWebRTC image (bot-webrtc) would serve no session" if locks_aiortc
                 else "its SmallWebRTC image cannot be built (no aiortc)")
        raise cfg.fail("botProject", f"= {found.configured!r}: its bot.py builds Pipecat's {', '.join(built)} "
                                     "transport and no SmallWebRTC one, so this stack's TURN relay "
                                     f"(voicefleet:turn) serves it nothing, and {image}: "
                                     "`pulumi config set turn none` (what it builds needs no relay)"
                                     f"{_protected_relay(settings)}; or build "
                                     "SmallWebRTCTransport in bot.py and add Pipecat's webrtc extra "
                                     "(`pipecat-ai[silero,webrtc,…]`)")
    if settings.turn is not None and not locks_aiortc:
        raise cfg.fail("botProject", f"= {found.configured!r} has no aiortc, which the SmallWebRTC bot image needs "
                                     "with a TURN relay (voicefleet:turn): add Pipecat's webrtc extra "
                                     "(`pipecat-ai[daily,silero,webrtc]`)")
    if "daily" not in web:
        pulumi.log.info(f"voicefleet:botProject = {found.configured!r}: its bot.py builds SmallWebRTC and not Daily, "
                        "so this stack's dispatcher offers SmallWebRTC web sessions only (TRANSPORTS=webrtc): a Daily "
                        "start (POST /start with transport daily) is refused")
    if built and (unserved := [transport for transport in offered if transport not in built]):
        served = [transport for transport in offered if transport in built]
        builds = f"its bot.py builds Pipecat's {', '.join(built)} transport, not {', '.join(unserved)}"
        if not served:
            raise cfg.fail("botProject", f"= {found.configured!r}: {builds}, and this stack offers only "
                                         f"{offered_sessions(offered)}: give it what it answers: "
                                         f"{serving_advice(found.project, settings.cloud)}; or use a project whose "
                                         "bot builds daily")
        pulumi.log.warn(f"voicefleet:botProject = {found.configured!r}: {builds}: this stack's "
                        f"{offered_sessions(unserved)} will fail; its {offered_sessions(served)} are served")
    images = found.project.images(webrtc=settings.turn is not None)
    _hold_to_budget(cfg, found, images=images, cloud=settings.cloud, drain=drain)
    if takes_calls and not built and "websocket" not in found.project.transports:
        raise cfg.fail("botProject", f"= {found.configured!r} has no fastapi, which a bot needs to take a phone call "
                                     "(a carrier's credentials are configured): add Pipecat's websocket extra "
                                     "(`pipecat-ai[daily,silero,websocket]`) and lock again")


def _protected_relay(settings: HasBotProject) -> str:
    """What a protected stack (`protect`: aws-prod, gcp-prod) must unprotect before an `up` with `turn none`:
    Pulumi refuses any deployment that deletes a protected resource, and these exist only with a relay (an Azure
    secret unset keeps its name with a placeholder: nothing is deleted)."""
    if not getattr(settings, "protect", False) or settings.cloud not in ("aws", "gcp"):
        return ""
    made = ("its shared secret, and the bot-webrtc image repository (emptied first: it is not force-deleted) and "
            "log group where an earlier `up` made them") if settings.cloud == "aws" else "its shared secret"
    return (f", but this stack is protected, and that `up` deletes the relay's protected resources ({made}), "
            "which Pulumi refuses: `pulumi state unprotect '<urn>'` each first (`pulumi stack --show-urns` "
            "lists them)")


def offered_sessions(transports: list[str] | tuple[str, ...]) -> str:
    """What a stack offering `transports` serves, in words: "Daily web sessions (POST /start) and …"."""
    return " and ".join(OFFERED[transport] for transport in transports)


def serving_advice(project: BotProject, cloud: str) -> str:
    """What to set so a stack offers what a bot that builds no Daily transport answers: a TURN relay
    for its SmallWebRTC sessions, the call credentials for its WebSocket (phone) transport."""
    ways = []
    if "webrtc" in project.built:
        # What each cloud asks of a relay's stack beyond these keys (stacks/config/channel.py, turn.py).
        https = {"aws": "; on AWS the channel needs HTTPS: `pulumi config set certificateArn …` and "
                        "`pulumi config set dispatcherDomain …`",
                 "azure": "; on Azure the managed relay's VM needs a credential: `pulumi config set "
                          "turnSshPublicKey \"$(cat ~/.ssh/id_ed25519.pub)\"` (no rule admits SSH)"}.get(cloud, "")
        ways.append("for its SmallWebRTC sessions a TURN relay: `pulumi config set turn managed` (or external with "
                    "turnUrls), `pulumi config set --secret turnSharedSecret` and `pulumi config set --secret "
                    f"botChannelToken` (both prompt for the value; docs/pulumi.md, TURN relay){https}")
    if "websocket" in project.built:
        ways.append(credential_advice(project.carriers))
    return "; or ".join(ways)


# The pull cost is priced at the gzip ratio measured on a real build (docs/images.md, "Pull cost"):
# what the builder writes, and what GCP's and Azure's registries serve as pushed; the AWS bot images
# go out zstd (images/component.py, stacks/aws/stack.py), whose pull is usually smaller but has not
# been measured here.
PULL_COMPRESSION = {
    "aws": "priced as gzip layers (this stack pushes the bot image zstd to ECR, not priced separately)",
    "gcp": "priced as gzip layers, as this stack pushes them to Artifact Registry",
    "azure": "priced as gzip layers, as this stack pushes them to Azure Container Registry",
    "k8s": "priced as gzip layers, as this stack pushes them to k8sRegistry",
}
SLIMMING = ("Slim it (packages the bot never imports go in [tool.voicefleet] exclude-packages; a torch project "
            "pins the CPU-only build)")
MINIMUM_BUDGET_MB = 50


def _hold_to_budget(cfg: Reader, found: BotProjectSettings, *, images: tuple[str, ...], cloud: str,
                    drain: bool = False) -> None:
    """The plan's word on the size of each bot image the stack builds (`images`), before `pulumi up`
    builds and ships it (images/size_prediction.py): the predicted size and pull cost always; over
    the size voicefleet holds its own bot image to (images/budgets.py), the packages that make it big
    and the slimming that keeps behaviour, and the plan passes. A stack that sets `botImageBudgetMb`
    is held to it by the rule the image build applies (images/budgets.py closure_budget_mb): a
    prediction over it is refused. Not while draining (`drain: true`, before a destroy): that `up`
    launches no bot, and refusing it would block the teardown of a stack whose bot grew over budget,
    so the size is only warned about."""
    budget = cfg.integer("botImageBudgetMb", minimum=0)
    if 0 < budget < MINIMUM_BUDGET_MB:
        raise cfg.fail("botImageBudgetMb", f"must be 0 (none: the size is stated, not enforced) or at least "
                                           f"{MINIMUM_BUDGET_MB} (got {budget})")
    project = found.project
    where = f"voicefleet:botProject = {found.configured!r}"
    if project.kind != "uv":
        checked = f"voicefleet:botImageBudgetMb {budget} is not checked" if budget else "nothing is stated"
        pulumi.log.info(f"{where}: the bot image's size cannot be predicted before the build, so {checked}: "
                        "requirements.txt records no wheel sizes. Lock the project with uv (`uv init --bare && uv "
                        "add -r requirements.txt`) for a prediction, or measure a build: `BOT_PROJECT=<folder> "
                        "BOT_IMAGES_ONLY=1 images/ci/build.sh`")
        return
    sizes = {image: predict_image(project, image) for image in images}
    for image, size in sizes.items():
        extra = allowance_mb(image)
        allowance = f" + {extra:.0f} MB for aiortc's stack" if extra else ""
        kept = project.keeps(image)
        keeps = "" if kept is None else (
            f", keeping {' '.join(IMAGE_LEAVES_OUT[image][1])} because bot.py:{kept.line} imports Pipecat's "
            f"{kept.name} transport at module level ({kept.evidence}; move it into the function that builds "
            "that transport to leave it out)")
        held = f"voicefleet:botImageBudgetMb {budget}{allowance}" if budget else "no voicefleet:botImageBudgetMb set"
        stated = (f"the {image} image's packages are predicted at {size.installed_mb:.0f} MB installed{keeps} "
                  f"({held}); {size.pull_cost()}; {PULL_COMPRESSION[cloud]}")
        enough = budget_to_set({name: predicted.installed_mb for name, predicted in sizes.items()})
        judgement = judge(image, size.installed_mb, budget or None, enough_mb=enough)
        if judgement.note is None:
            pulumi.log.info(f"{where}: {stated}")
        elif not judgement.refused:
            pulumi.log.warn(f"{where}: {stated}; {size.advice()}. {SLIMMING}. {judgement.note}")
        elif drain:
            pulumi.log.warn(f"{where}: {stated}, over the budget; not refused while draining (drain: true)")
        else:
            raise cfg.fail("botProject", f"= {found.configured!r}: {stated}, over the budget; {size.advice()}. "
                                         f"{SLIMMING}, or: {judgement.note}; `STACK={pulumi.get_stack()} "
                                         "images/ci/build.sh` holds each image it builds to the same budget")


def web_transports(settings: HasBotProject) -> tuple[str, ...]:
    """The web sessions a stack with a TURN relay offers, the default first (its dispatcher's
    TRANSPORTS): Daily's and SmallWebRTC's, or SmallWebRTC's alone for a bot.py that builds it and not
    Daily, so a Daily start is refused at once instead of launching a bot that cannot join a room.
    SmallWebRTC's alone on k8s in agent-sandbox mode too: every bot there is a pod of one template
    booting one transport, and the relay is for SmallWebRTC (docs/kubernetes.md, "A TURN relay")."""
    built = () if settings.bot_project is None else settings.bot_project.project.built
    one_template = settings.kubernetes is not None and settings.kubernetes.mode == AGENT_SANDBOX
    return ("webrtc",) if one_template or ("webrtc" in built and "daily" not in built) else ("daily", "webrtc")


def image_args(settings: BuildsImages) -> dict[str, Any]:
    """The ImagesArgs fields the settings decide, in every cloud: the SmallWebRTC bot with a TURN
    relay, the Daily bot unless the project's bot.py builds SmallWebRTC only, the revision tag,
    platforms, preview builds, and the bot project's folder and the packages to leave out of it."""
    found = settings.bot_project
    project = {} if found is None else {
        "bot_project": found.location, "bot_exclude_packages": found.project.exclude_packages,
        "bot_leaves_out": {argument: found.project.leaves_out(image)
                           for image, (_, _, argument) in IMAGE_LEAVES_OUT.items()}}
    webrtc = settings.turn is not None
    daily = {} if found is None else {"daily": "bot" in found.project.images(webrtc=webrtc)}
    return {"webrtc": webrtc, **daily, "source_revision": settings.source_revision,
            "platforms": settings.platforms, "build_on_preview": settings.build_on_preview, **project}


def secrets(cfg: Reader, single_keys: Mapping[str, str]) -> dict[str, pulumi.Output[str]]:
    """The bot's service keys, environment variable name -> value (an Output, never plain): the
    named set `botSecrets` plus the older single keys (`single_keys`: config key -> env name; the
    keyed example needs all three or none)."""
    single = {env: value for key, env in single_keys.items()
              if (value := cfg.secret(key, required=False)) is not None}
    if single and len(single) != len(single_keys):
        missing = next(k for k, env in single_keys.items() if env not in single)
        raise cfg.fail(missing, f"is required when any of {', '.join(single_keys)} is set (all or none)")
    named = _named(cfg)
    for env in sorted(single.keys() & named.keys()):
        key = next(k for k, e in single_keys.items() if e == env)
        raise cfg.fail("botSecrets", f"sets {env}, which {cfg.key(key)} sets too: keep one")
    return {**single, **named}


def check_names_apart(cfg: Reader, bot: Mapping[str, object], stack_secrets: Mapping[str, str]) -> None:
    """A botSecrets name that one of the stack's own secret keys also sets is refused (`stack_secrets`:
    variable -> that key, of those set): the cloud's secret store holds one value per name, so one of
    the two would silently stand for the other. The bot would read the stack's (a carrier's token, the
    regions' shared secret) and the dispatcher, which never takes a bot's own secret, would lose it."""
    for name in sorted(bot.keys() & stack_secrets.keys()):
        raise cfg.fail("botSecrets", f"sets {name}, which {cfg.key(stack_secrets[name])} sets too for the "
                                     "dispatcher (one secret store, one value per name): give the bot's another "
                                     "name, and read that name in bot.py")


def _named(cfg: Reader) -> dict[str, pulumi.Output[str]]:
    if cfg.raw("botSecrets") is None:
        return {}
    try:
        values = cfg.config.get_object("botSecrets")
    except Exception:  # noqa: BLE001 - pulumi raises its own JSON error type
        values = None
    if not isinstance(values, dict):
        raise cfg.fail("botSecrets", "must be a map of environment variable names to secret values")
    if not values:
        return {}  # Pulumi.yaml's default, merged in plain by the CLI
    if not pulumi.runtime.is_config_secret(cfg.key("botSecrets")):
        raise cfg.fail("botSecrets", "is stored in plain text: set each key with "
                                     "pulumi config set --secret --path 'botSecrets.NAME' …")
    found: dict[str, pulumi.Output[str]] = {}
    for name, value in sorted(values.items()):
        if not _ENV_NAME.fullmatch(name):  # match's `$` would pass a trailing newline: `NAME\n` is no name
            raise cfg.fail("botSecrets", f"key {name!r} is not an environment variable name (A-Z, 0-9, _)")
        if (reason := refusal(name)) is not None:
            raise cfg.fail("botSecrets", f"key {reason}")
        if not isinstance(value, str) or not value:
            raise cfg.fail("botSecrets", f"{name} must be a non-empty string")
        if any(char in value for char in "\n\r\0"):
            # A GCE bot's env file (stacks/gcp/startup.py) is one line per variable: a second line would be
            # a variable of its own, whatever its name. The value itself is never said.
            raise cfg.fail("botSecrets", f"{name}'s value has more than one line: encode it on one (base64, or "
                                         "JSON without newlines) and decode it in the bot")
        found[name] = pulumi.Output.secret(value)
    return found
