"""Turn a Pipecat Cloud `pcc-deploy.toml` into voicefleet stack config: `python -m stacks.import_pcc`.

    python -m stacks.import_pcc path/to/pcc-deploy.toml --cloud aws [--env-file path/to/.env]

Prints the `pulumi config set` commands for the stack (run them in the folder of Pulumi.yaml, on
the stack you selected), each with a comment saying which pcc-deploy.toml field it comes from, then
what does not carry over and why. Nothing is written and no cloud is called. The fields read are
the ones Pipecat Cloud's CLI accepts (`pipecatcloud/_utils/deploy_utils.py`): agent_name, image,
build_id, image_credentials, secret_set, region, agent_profile, resources, [scaling]
min_agents/max_agents, max_session_duration, websocket_auth, enable_krisp, enable_managed_keys,
[krisp_viva], [build], [docker]. Each becomes a setting or a note saying why it does not carry over;
a key Pipecat Cloud does not document is a note too, and only a value Pipecat Cloud itself would
refuse stops the conversion (with the reason).

The bot image is built from the project folder (voicefleet:botProject), not from the project's
Dockerfile: see docs/bring-your-bot.md "Coming from Pipecat Cloud" for why, and `dockerfile_notes`
for what each extra Dockerfile line becomes. Secret values are never printed: with `--env-file`
(the file given to `pipecat cloud secrets set --file`), each key becomes a command that pipes its
value from that file into `pulumi config set --secret`, so it is on no command line either.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dispatcher.machines.bot_variables import refusal
from images.bot_project import BOT_FILE, BotProject, BotProjectError
from images.bot_project import read as read_project
from images.bot_transports import carriers_answered, transports_built
from images.budgets import closure_budget_mb
from images.size_prediction import predict_image
from stacks.config.bot_env import OTLP_ENDPOINT, OTLP_HEADERS
from stacks.config.carriers import credential_advice
from stacks.config.limits import FARGATE_MEMORY
from stacks.tools.pcc_dockerfile import dockerfile_notes

# Pipecat Cloud's agent profiles: (vCPU, GiB). Hosted PCC runs one session per instance.
PROFILES = {"agent-1x": (0.5, 1.0), "agent-2x": (1.0, 2.0), "agent-3x": (1.5, 3.0)}
# The closest Compute Engine machine type at least as large (sustained vCPU, memory).
GCE_MACHINES = {"agent-1x": "e2-small", "agent-2x": "e2-medium", "agent-3x": "e2-standard-2"}
# Pipecat Cloud regions -> the cloud region in the same place.
REGIONS = {"aws": {"us-west": "us-west-2", "us-east": "us-east-1", "eu-central": "eu-central-1",
                   "ap-south": "ap-south-1"},
           "gcp": {"us-west": "us-west1", "us-east": "us-east4", "eu-central": "europe-west3",
                   "ap-south": "asia-south1"}}
PCC_DEFAULT_MAX_SESSION_SECONDS = 7200
# Pipecat Cloud's default cap on scaling.max_agents ("Must be between 1 and 50", raised only by its support):
# docs.pipecat.ai api-reference/cli/cloud/deploy.mdx, --max-agents.
PCC_MAX_AGENTS_CAP = 50
# websocket_auth's documented values (docs.pipecat.ai pipecat-cloud/guides/websocket-authentication).
WEBSOCKET_AUTH = {
    "token": "the same here: telephony and WebSocket calls connect with the one-time token POST /start returns",
    "none": "calls here always need the one-time token POST /start returns (except on a keyless local "
            "dispatcher): a client that connected with no token must call POST /start first",
}
KNOWN_KEYS = {"agent_name", "image", "build_id", "image_credentials", "secret_set", "region", "scaling", "docker",
              "build", "agent_profile", "krisp_viva", "websocket_auth", "max_session_duration", "resources",
              "enable_krisp", "enable_managed_keys"}
# How the printed commands run this module: as the docs run every command, from the checkout.
THIS_COMMAND = "uv run python -m stacks.import_pcc"
# The keys that set nothing in a stack, each with why (a note in the output, never a refusal).
NOT_CARRIED = (
    ("image", "voicefleet builds and pushes the image itself (pulumi up), pinned by digest"),
    ("build_id", "voicefleet builds the image itself from botProject"),
    ("image_credentials", "the stack's own registry needs no pull secret"),
    ("enable_krisp", "Krisp noise cancellation ships in Pipecat Cloud's base image under its licence; voicefleet's "
                     "image has no Krisp: a bot that imports it (KrispFilter, KrispVivaFilter) fails its session, "
                     "so drop the filter, use one your bot brings, or install your own Krisp SDK in bake.py"),
    ("krisp_viva", "Krisp VIVA is a Pipecat Cloud service; use a filter your bot brings"),
    ("enable_managed_keys", "Daily's managed service keys are Pipecat Cloud's; put your own keys in botSecrets"),
    ("docker", "docker settings do not apply: the stack builds with its own settings"),
)
# Variables a stack sets on every bot from its own settings: in botSecrets they would collide.
STACK_SETTINGS = {
    OTLP_ENDPOINT: "a stack's voicefleet:otelExporterOtlpEndpoint sets it on the dispatcher and every bot, for "
                   "voicefleet's OTLP/HTTP exporter, which your bot's own exporter reads too: `pulumi config set "
                   "otelExporterOtlpEndpoint https://<your collector's OTLP/HTTP endpoint>` (an OTLP/gRPC port such "
                   "as 4317 does not serve it; docs/operations.md)",
    OTLP_HEADERS: "the stack's voicefleet:otelExporterOtlpHeaders sets it with otelExporterOtlpEndpoint: "
                  "`pulumi config set --secret otelExporterOtlpHeaders …`",
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_UNITS = {None: 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
          "Ti": 2**40}


class PccConfigError(ValueError):
    """pcc-deploy.toml cannot be read or has a value Pipecat Cloud itself would refuse."""


@dataclass
class Plan:
    commands: list[tuple[str, str]] = field(default_factory=list)  # (command, why)
    notes: list[str] = field(default_factory=list)

    def set(self, key: str, value: str | int, why: str) -> None:
        self.commands.append((f"pulumi config set {key} {shlex.quote(str(value))}", why))

    def render(self) -> str:
        lines = [f"{command}  # {why}" for command, why in self.commands]
        if self.notes:
            lines += ["", "# Not carried over, or to do by hand:", *(f"# - {note}" for note in self.notes)]
        return "\n".join(lines) + "\n"


def _quantity(value: object, what: str) -> float:
    match = _QUANTITY.match(str(value))
    if not match:
        raise PccConfigError(f"resources.{what} {value!r} is not a quantity like 500m, 2 or 4Gi")
    return float(match.group(1)) * _UNITS[match.group(2)]


def fargate_size(vcpu: float, memory_gib: float) -> tuple[int, int]:
    """The smallest Fargate (CPU units, MiB) with at least this much of both."""
    for cpu, memories in FARGATE_MEMORY.items():
        if cpu >= vcpu * 1024:
            fitting = [m for m in memories if m >= memory_gib * 1024]
            if fitting:
                return cpu, fitting[0]
    raise PccConfigError(f"{vcpu} vCPU / {memory_gib} GiB is larger than any Fargate task size")


def _sizing(config: dict[str, object], cloud: str, plan: Plan) -> None:
    profile = config.get("agent_profile")
    resources = config.get("resources")
    if isinstance(resources, dict) and resources:
        vcpu = _quantity(resources.get("cpu"), "cpu")
        memory = _quantity(resources.get("memory"), "memory") / 2**30
        source = f"resources cpu={resources.get('cpu')} memory={resources.get('memory')}"
    else:
        profile = str(profile or "agent-1x")
        if profile not in PROFILES:
            raise PccConfigError(f"agent_profile {profile!r} is not one of {', '.join(PROFILES)}")
        vcpu, memory = PROFILES[profile]
        source = f"agent_profile {profile}" + ("" if config.get("agent_profile") else " (Pipecat Cloud's default)")
    if cloud == "aws":
        cpu, mib = fargate_size(vcpu, memory)
        exact = math.isclose(cpu, vcpu * 1024) and math.isclose(mib, memory * 1024)
        why = f"{source}: {vcpu:g} vCPU / {memory:g} GiB" + ("" if exact else ", rounded up to a Fargate size")
        plan.set("botCpu", cpu, why)
        plan.set("botMemory", mib, why)
    elif profile in GCE_MACHINES and not (isinstance(resources, dict) and resources):
        plan.set("botMachineType", GCE_MACHINES[str(profile)], f"{source}: the closest e2 type at least as large")
    else:
        plan.notes.append(f"{source}: pick a Compute Engine machine type with at least {vcpu:g} vCPU and "
                          f"{memory:g} GiB (voicefleet:botMachineType)")


def _scaling(config: dict[str, object], plan: Plan) -> None:
    scaling = config.get("scaling") or {}
    if not isinstance(scaling, dict):
        raise PccConfigError("[scaling] must be a table")
    minimum, maximum = scaling.get("min_agents", 0), scaling.get("max_agents")
    if not isinstance(minimum, int) or minimum < 0:
        raise PccConfigError(f"scaling.min_agents must be a whole number >= 0 (got {minimum!r})")
    plan.set("reserveMinIdle", minimum, "scaling.min_agents: bots kept warm and idle at all times")
    if maximum is not None:
        if not isinstance(maximum, int) or maximum < max(1, minimum):
            raise PccConfigError(f"scaling.max_agents must be a whole number >= max(1, min_agents) (got {maximum!r})")
        plan.set("maxConcurrentSessions", maximum, "scaling.max_agents: one session per agent, more get 429")
        if maximum > PCC_MAX_AGENTS_CAP:
            plan.notes.append(f"scaling.max_agents {maximum}: above Pipecat Cloud's default cap of "
                              f"{PCC_MAX_AGENTS_CAP}; here the cap is your cloud's quota (Fargate tasks or "
                              "Compute Engine CPUs in the region): check it before relying on that many")


def _secrets(config: dict[str, object], env_file: Path | None, plan: Plan) -> None:
    secret_set = config.get("secret_set")
    if not secret_set:
        return
    if env_file is None:
        plan.notes.append(f"secret_set {secret_set}: set each of its keys as "
                          f"`pulumi config set --secret --path 'botSecrets.NAME'` (the value is read from stdin; "
                          f"run again with --env-file to have the commands written for you)")
        return
    file = shlex.quote(str(env_file))
    blank = []
    for name, value in env_values(env_file).items():
        if not value.strip():  # an env.example's placeholder: a secret of nothing would only hide that
            blank.append(name)
            continue
        if name in STACK_SETTINGS:
            plan.notes.append(f"{name} (in {env_file}): not a bot secret here: {STACK_SETTINGS[name]}")
            continue
        if (reason := refusal(name)) is not None:
            plan.notes.append(f"{name} (in {env_file}): not a bot secret (the plan refuses it): {reason}")
            continue
        plan.commands.append((f"{THIS_COMMAND} --env-file {file} --value {name} | "
                              f"pulumi config set --secret --path 'botSecrets.{name}'",
                              f"secret_set {secret_set}: {name}, reaches the bot by reference"))
    if blank:
        plan.notes.append(f"{', '.join(blank)}: empty in {env_file}, so no secret is set; once you have a value, "
                          "`pulumi config set --secret --path 'botSecrets.NAME'` (it reads the value from stdin)")


def _refuse_exclusive_pairs(config: dict[str, object]) -> None:
    """The pairs Pipecat Cloud itself refuses, so a file that never deployed there is not converted as if it had."""
    if config.get("image") and config.get("build_id"):
        # pipecatcloud `DeployConfigParams`: "Cannot specify both 'image' and 'build_id'".
        raise PccConfigError("image and build_id cannot both be set (Pipecat Cloud refuses the pair): keep the one "
                             "you deploy")
    if config.get("agent_profile") and config.get("resources"):
        # docs.pipecat.ai pipecat-cloud/enterprise/sizing: "Explicit resources and an agent profile are mutually
        # exclusive".
        raise PccConfigError("agent_profile and [resources] cannot both be set (Pipecat Cloud refuses the pair): "
                             "keep the one you deploy")


def _websocket_auth(config: dict[str, object], plan: Plan) -> None:
    mode = config.get("websocket_auth")
    if mode is None:
        return
    if mode not in WEBSOCKET_AUTH:
        raise PccConfigError(f"websocket_auth {mode!r} is not one of {', '.join(sorted(WEBSOCKET_AUTH))}")
    plan.notes.append(f"websocket_auth {mode}: {WEBSOCKET_AUTH[str(mode)]}")


def _exclusions(build: dict[str, object], folder: Path, plan: Plan) -> None:
    """`[build.exclude] patterns`, the form Pipecat Cloud documents and its CLI reads (deploy.mdx,
    `deploy_utils.load_deploy_config_file` pops `build.exclude.patterns`), become .dockerignore lines."""
    if "exclude_patterns" in build:
        # Pipecat Cloud never read this spelling: its files were never excluded there either.
        raise PccConfigError("build.exclude_patterns is not a key Pipecat Cloud reads; write the patterns as "
                             "[build.exclude] patterns = [...]")
    exclude = build.get("exclude", {})
    patterns = exclude.get("patterns", []) if isinstance(exclude, dict) else None
    if not isinstance(patterns, list) or not all(isinstance(item, str) for item in patterns):
        raise PccConfigError("[build.exclude] patterns must be a list of strings")
    if patterns:
        lines = " ".join(shlex.quote(pattern) for pattern in patterns)
        plan.notes.append(f"build.exclude.patterns: the bot image build honours the project's .dockerignore, where "
                          f"a pattern is anchored at the project's root: `printf '%s\\n' {lines} >> "
                          f"{shlex.quote(str(folder / '.dockerignore'))}` (.venv, .git and .env are left out "
                          "already)")


def _web_transport(folder: Path, plan: Plan) -> None:
    """A bot that builds SmallWebRTC and not Daily (p2p-webrtc/pipecat-cloud) serves web sessions
    only where the stack relays SmallWebRTC; read from bot.py's source, so even before `uv lock`."""
    if not (folder / BOT_FILE).is_file():
        return  # read_project has said so already
    built = {transport.name: transport for transport in transports_built(folder / BOT_FILE)}
    if "webrtc" in built and "daily" not in built:
        plan.notes.append(f"{folder / BOT_FILE}:{built['webrtc'].line} builds Pipecat's SmallWebRTC transport, not "
                          "Daily's: a stack serves its web sessions only with a TURN relay, `pulumi config set turn "
                          "managed` (or external) and `pulumi config set --secret turnSharedSecret` "
                          "(docs/pulumi.md, TURN relay); without one the stack's web sessions are Daily's and fail for "
                          "it, and the plan refuses it unless it also builds a WebSocket transport and a carrier's "
                          "credential gives it calls to take")


def _size(project: BotProject, plan: Plan) -> None:
    """The bot image's predicted size, as the plan will state it (images/size_prediction.py)."""
    if project.kind != "uv":
        plan.notes.append("image size: a requirements.txt records no wheel sizes, so neither this nor the plan can "
                          "predict it; lock the project with uv (`uv init --bare && uv add -r requirements.txt`)")
        return
    # The images a stack that serves it builds (a relay for a bot that builds SmallWebRTC and not Daily).
    for image in project.images(webrtc="webrtc" in project.built and "daily" not in project.built):
        size = predict_image(project, image)
        note = (f"image size: the {image} image's packages are predicted at {size.installed_mb:.0f} MB installed; "
                f"{size.pull_cost()}")
        if size.unknown:
            note += f" (not counted: {', '.join(size.unknown)}, for which the lock records no wheel)"
        reference = closure_budget_mb(image)
        if size.installed_mb > reference:
            note += (f"; over the {reference:.0f} MB voicefleet holds its own {image} image to: {size.advice()}. "
                     "The plan states this and passes; a stack that sets voicefleet:botImageBudgetMb is held to it")
        plan.notes.append(note)


def _calls(folder: Path, plan: Plan) -> None:
    """The carrier credentials the plan will want, read from bot.py as the plan reads it."""
    if not (folder / BOT_FILE).is_file():
        return
    built = {transport.name for transport in transports_built(folder / BOT_FILE)}
    carriers = carriers_answered(folder / BOT_FILE)
    if built and "daily" not in built and "webrtc" not in built:
        plan.notes.append(f"phone: {folder / BOT_FILE} builds no Daily transport, so the plan refuses this project "
                          f"on a stack that takes no calls: {credential_advice(carriers)}")
    elif carriers or "websocket" in built:
        plan.notes.append(f"phone: to take its calls: {credential_advice(carriers)}")


def env_values(env_file: Path) -> dict[str, str]:
    """A .env file's variables (`NAME=value`, `export NAME=value`, quoted values), in file order, read
    as python-dotenv reads them: in an unquoted value a `#` after whitespace starts a comment, so an
    env.example's `OPENAI_API_KEY= # Create here: …` is blank, not a secret of that text."""
    values: dict[str, str] = {}
    for line in env_file.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$", line)
        if match:
            values[match.group(1)] = _env_value(match.group(2))
    return values


def _env_value(raw: str) -> str:
    text = raw.strip()
    quoted = re.match(r"""^(['"])(.*?)\1""", text)
    if quoted:
        return quoted.group(2)
    return re.sub(r"\s+#.*", "", raw).strip()


def convert(path: Path, cloud: str, env_file: Path | None = None) -> Plan:
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise PccConfigError(f"{path}: {error}") from None
    plan = Plan()
    unknown = sorted(set(config) - KNOWN_KEYS)
    if unknown:
        plan.notes.append(f"{', '.join(unknown)}: not keys Pipecat Cloud documents for pcc-deploy.toml (a typo?); "
                          "ignored")
    _refuse_exclusive_pairs(config)
    plan.set("cloud", cloud, "the cloud this stack deploys to")
    build = config.get("build") if isinstance(config.get("build"), dict) else {}
    assert isinstance(build, dict)
    folder = Path(os.path.relpath((path.parent / str(build.get("context_dir", "."))).resolve()))
    project: BotProject | None = None
    try:
        project = read_project(folder)
        plan.set("botProject", str(folder),
                 f"the project pcc-deploy.toml deploys (pipecat-ai {project.pipecat_version})")
    except BotProjectError as error:
        plan.set("botProject", str(folder), "the project pcc-deploy.toml deploys")
        plan.notes.append(f"the project cannot be built as it is: {error}; then `uv run python -m "
                          f"images.size_prediction {folder}` predicts its image's size")
    if config.get("agent_name"):
        plan.notes.append(f"agent_name {config['agent_name']}: choose a stack name (at most 20 lowercase letters, "
                          "digits and dashes): `pulumi stack init NAME`")
    region = config.get("region")
    if region:
        mapped = REGIONS[cloud].get(str(region))
        if mapped is None:
            raise PccConfigError(f"region {region!r} is not a Pipecat Cloud region ({', '.join(REGIONS[cloud])})")
        plan.set(f"{cloud}:region", mapped, f"region {region}")
    _sizing(config, cloud, plan)
    _scaling(config, plan)
    seconds = config.get("max_session_duration", PCC_DEFAULT_MAX_SESSION_SECONDS)
    if not isinstance(seconds, int) or not 60 <= seconds <= 14400:
        raise PccConfigError(f"max_session_duration must be 60..14400 seconds (got {seconds!r})")
    plan.set("maxSessionSeconds", seconds, "max_session_duration" + (
        "" if "max_session_duration" in config else " (Pipecat Cloud's default)"))
    _secrets(config, env_file, plan)
    for key, note in NOT_CARRIED:
        if config.get(key):
            plan.notes.append(f"{key}: {note}")
    _websocket_auth(config, plan)
    _web_transport(folder, plan)
    _calls(folder, plan)
    if project is not None:
        _size(project, plan)
    _exclusions(build, folder, plan)
    plan.notes += dockerfile_notes(folder / str(build.get("dockerfile", "Dockerfile")))
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.import_pcc", description=__doc__.split("\n\n")[0])
    parser.add_argument("deploy_config", type=Path, nargs="?", help="path to pcc-deploy.toml")
    parser.add_argument("--cloud", choices=("aws", "gcp"))
    parser.add_argument("--env-file", type=Path, help="the .env your Pipecat Cloud secret set was made from")
    parser.add_argument("--value", metavar="NAME", help="print NAME's value from --env-file, for a pipe into "
                                                       "`pulumi config set --secret` (the printed commands use it)")
    args = parser.parse_args(argv)
    if args.value:
        values = env_values(args.env_file) if args.env_file else {}
        if args.value not in values:
            print(f"import_pcc: {args.value} is not in {args.env_file}", file=sys.stderr)
            return 1
        sys.stdout.write(values[args.value])
        return 0
    if args.deploy_config is None or args.cloud is None:
        parser.error("pcc-deploy.toml and --cloud are required, e.g. "
                     "python -m stacks.import_pcc my-bot/pcc-deploy.toml --cloud aws")
    if args.deploy_config.is_dir():  # a project folder: its pcc-deploy.toml is what is meant
        inside = args.deploy_config / "pcc-deploy.toml"
        if not inside.is_file():
            print(f"import_pcc: {args.deploy_config} is a folder with no pcc-deploy.toml: pass the path of the "
                  "project's pcc-deploy.toml", file=sys.stderr)
            return 1
        args.deploy_config = inside
    try:
        print(convert(args.deploy_config, args.cloud, args.env_file).render(), end="")
    except PccConfigError as error:
        print(f"import_pcc: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
