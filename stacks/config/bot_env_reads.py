"""The variables the bot reads that the stack gives it nothing for: named by the plan, and, on a `prod`
stack, a stop until the team accepts each (`botUnsetVariables`).

A pipecat-examples bot reads `os.getenv("ENV")` or `os.environ["DEEPGRAM_API_KEY"]`; without a
`botSecrets` entry the cloud bot fails its first session with a KeyError (or quietly takes another
branch). What the bot reads comes from bot.py and the modules it imports, parsed (images/env_reads.py); what the stack
provides is `botSecrets` (and the single bot keys), the plain settings it sets on every bot
(stacks/config/bot_plain_env.py: the observability settings, the Twilio region), what voicefleet and the platform
set themselves, and the region on AWS. A read with a default in the
call (`os.getenv("ENV", "local")`) is never asked for; one the bot checks itself (`os.getenv("ENV") or
"local"`) goes in `botUnsetVariables`: a list of names, or a map of name -> the reason.
"""

from __future__ import annotations

from typing import Any

import pulumi

from dispatcher.machines.bot_variables import credential_cloud, refusal
from images.env_reads import MAX_SOURCE_BYTES, EnvReads, env_reads
from stacks.config.bot_plain_env import bot_plain_environment
from stacks.config.model import Settings
from stacks.config.reader import Reader

ACCEPTED_KEY = "botUnsetVariables"
# Set in every container or VM the bot runs in, whatever the cloud; and the region ECS (Fargate) sets.
EVERYWHERE = frozenset({"HOSTNAME", "LANG", "PWD"})
PLATFORM = {"aws": frozenset({"AWS_REGION", "AWS_DEFAULT_REGION"})}


def provided(settings: Settings) -> frozenset[str]:
    """Every name the stack's bots find set: the team's secrets, the stack's bot settings, the platform's."""
    return frozenset({*settings.secrets.bot, *bot_plain_environment(settings),
                      *settings.observability.bot_secret_names(),
                      *EVERYWHERE, *PLATFORM.get(settings.cloud, ())})


def scan(settings: Settings) -> EnvReads | None:
    """What the bot and the project's modules it imports read (None: no bot project to read)."""
    found = settings.bot_project
    if found is None:
        return None
    scanned = env_reads(found.project.path)
    if scanned.unread:
        pulumi.log.warn(f"voicefleet:botProject = {found.configured!r}: its variables were read from its first "
                        f"{MAX_SOURCE_BYTES // 1_000_000} MB of Python only; not read: {', '.join(scanned.unread[:5])}"
                        + (f" and {len(scanned.unread) - 5} more" if len(scanned.unread) > 5 else ""))
    return scanned


def unset(settings: Settings, scanned: EnvReads | None) -> dict[str, tuple[str, ...]]:
    """Name -> where the bot reads it, for each name the bot reads and nothing sets."""
    if scanned is None:
        return {}
    given = provided(settings)
    return {name: where for name, where in scanned.reads.items()
            if name not in given and (refusal(name) is None or credential_cloud(name) is not None)}


def unread_secrets(settings: Settings, scanned: EnvReads) -> list[str]:
    """The bot's secrets (`botSecrets`, the single bot keys) that neither bot.py nor a module of the
    project it imports reads by name: a Pipecat Cloud secret set copied whole (`ENV`, `LOCAL_SERVER_URL`,
    `DAILY_SAMPLE_ROOM_URL`) holds values no session uses. Read by an installed package, one may still
    be used (a service's SDK reading its own key): a note, never a refusal."""
    return sorted(name for name in settings.secrets.bot if name not in scanned.every)


def accepted(cfg: Reader) -> frozenset[str]:
    """`botUnsetVariables`: a list of names, or a map of name -> the reason it stays unset."""
    if cfg.raw(ACCEPTED_KEY) is None:
        return frozenset()
    try:
        value: Any = cfg.config.get_object(ACCEPTED_KEY)
    except Exception:  # noqa: BLE001 - pulumi raises its own JSON error type
        value = None
    names = list(value) if isinstance(value, (list, dict)) else None
    if names is None or not all(isinstance(name, str) for name in names) or (
            isinstance(value, dict) and not all(isinstance(v, str) and v.strip() for v in value.values())):
        raise cfg.fail(ACCEPTED_KEY, "must be a list of variable names (`pulumi config set --path "
                                     "'botUnsetVariables[0]' ENV`) or a map of name to the reason "
                                     "(`pulumi config set --path 'botUnsetVariables.ENV' 'bot.py defaults to …'`)")
    return frozenset(names)


def check(cfg: Reader, settings: Settings) -> None:
    """Name each variable the bot reads and nothing sets; on a `prod` stack, stop unless it is accepted."""
    taken = accepted(cfg)
    scanned = scan(settings)
    if scanned is None:
        return
    where = f"voicefleet:botProject = {settings.bot_project.configured!r}" if settings.bot_project else ""
    if unused := unread_secrets(settings, scanned):
        pulumi.log.info(f"{where}: its bot.py and the modules it imports never read {', '.join(unused)}, which the "
                        "stack gives it as secrets (botSecrets): unless an installed package reads one, remove each "
                        f"(`pulumi config rm --path 'botSecrets.{unused[0]}'`)")
    for name in sorted((taken & set(scanned.imports_by)) - provided(settings)):
        sites = ", ".join(scanned.imports_by[name])
        pulumi.log.warn(f"{where}: {name} is accepted unset (voicefleet:{ACCEPTED_KEY}), yet {sites} decides on it "
                        f"what the bot imports: unset, the bot takes that branch and its imports (the image's check "
                        f"imports them too, and a session fails on one not installed); give it the value the bot "
                        f"needs (`pulumi config set --secret --path 'botSecrets.{name}'`, e.g. ENV=local for a bot "
                        "without Krisp), or install what that branch imports")
    missing = unset(settings, scanned)
    if not missing:
        return
    listed = "; ".join(f"{name} ({', '.join(where)})" + (" — the SDK's credential: grant voicefleet:botPermissions "
                                                         "instead" if credential_cloud(name) else "")
                       for name, where in missing.items())
    left = sorted(set(missing) - taken)
    assert settings.bot_project is not None  # `missing` came from it
    said = (f"voicefleet:botProject = {settings.bot_project.configured!r}: its bot reads variables this stack "
            f"sets nothing for: {listed}")
    ways = (f"give each a value (`pulumi config set --secret --path 'botSecrets.{left[0] if left else 'NAME'}'`), "
            f"or accept that it stays unset (`pulumi config set --path '{ACCEPTED_KEY}.NAME' '<why>'`)")
    if left and settings.environment == "prod" and not settings.drain:  # a drain's `up` launches no bot
        raise cfg.fail("botProject", f"= {settings.bot_project.configured!r}: its bot reads {', '.join(left)}, which "
                                     f"this prod stack sets nothing for ({listed}): {ways}")
    if left:
        pulumi.log.warn(f"{said}; {ways}; a prod stack stops here")
    else:
        pulumi.log.info(f"{said}; accepted unset (voicefleet:{ACCEPTED_KEY})")
