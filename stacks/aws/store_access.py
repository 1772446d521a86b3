"""The AWS store user's access string (stacks/shared/store_access.py's rules) within ElastiCache's rules.

The string follows ElastiCache's rules for access strings (no password, no `reset`, `on`, no
disabled command; `resetchannels` before its own channels on a serverless cache) and is written as
the engine renders a user, so a second preview shows no diff: `elasticache_problems` refuses at
preview what the service would reject or rewrite (`rendered` models the rewriting, and the Pulumi
mocks return it as the user's state). The reasons, with their sources: docs/replicas.md ("In the
stacks, and what it costs") and docs/security.md.
"""

from __future__ import annotations

import re

# ElastiCache disables these for every cache (ClientConfig.RestrictedCommands.html); an access
# string that names one is refused.
ELASTICACHE_DISABLED = frozenset({"bgrewriteaof", "bgsave", "config", "debug", "migrate", "replicaof", "save",
                                  "slaveof", "shutdown", "sync"})
_PASSWORD_RULES = (">", "<", "#", "!")


# The commands that have subcommands (a container: `script`, whose `script|load` is a command of its
# own), those the server names in COMMAND INFO; tests/infra/aws/test_store_access.py checks the list
# against real servers. `+<command>|<word>` on any other command is a first-argument rule, which
# Valkey takes only with a warning that it "is a misuse of ACL and may get disabled in the future"
# and ElastiCache's access-string syntax does not list (it lists `|` for subcommands).
CONTAINERS = frozenset({"acl", "client", "cluster", "command", "config", "function", "latency", "memory", "module",
                        "object", "pubsub", "script", "slowlog", "xgroup", "xinfo"})
# The rule forms this string may use: those of ElastiCache's documented examples and the providers'
# tests (`on ~app::* -@all +@read …`), with channels and subcommands.
_RULE = re.compile(r"^(on|off|resetchannels|[~&]\S+|[+-]@[a-z]+|[+-][a-z_]+|[+-](?P<container>[a-z_]+)\|[^|\s]+)$")
_ALIASES = {"allkeys": "~*", "allchannels": "&*", "allcommands": "+@all", "nocommands": "-@all"}


def rendered(access: str) -> str:
    """`access` as the engine renders the user it makes (Valkey 7.2 and later keep the command rules
    in the order given): on/off, then key patterns, then channel rules (`resetchannels` first
    unless every channel is allowed), then `-@all`/`+@all` and the command rules after the last
    of them, each rule once, where it was last given. What ElastiCache returns, in this model;
    tests/infra/aws/test_store_access.py holds it to what a real server renders."""
    # A serverless cache starts a user with every channel (`acl-pubsub-default allchannels`).
    state, every_channel = "off", True
    keys: list[str] = []
    channels: list[str] = []
    commands: list[str] = ["-@all"]
    for rule in (_ALIASES.get(t, t) for t in access.split()):
        lowered = rule.lower()
        if lowered in ("on", "off"):
            state = lowered
        elif rule.startswith("~") or lowered == "resetkeys":
            keys = [] if lowered == "resetkeys" else [k for k in keys if k != rule] + [rule]
        elif rule.startswith("&") or lowered == "resetchannels":
            every_channel = rule == "&*"
            channels = [] if lowered == "resetchannels" else [c for c in channels if c != rule] + [rule]
        elif lowered in ("+@all", "-@all"):
            commands = [lowered]
        elif rule[:1] in "+-":
            named = rule[0] + rule[1:].lower()
            commands = [c for c in commands if c[1:] != named[1:]] + [named]
        else:
            commands.append(rule)  # passwords and flags: refused by elasticache_problems
    if "~*" in keys:
        keys = ["~*"]
    channel_rules = ["&*"] if every_channel else ["resetchannels", *channels]
    return " ".join([state, *keys, *channel_rules, *commands])


def elasticache_problems(access: str) -> list[str]:
    """Why ElastiCache (or the Valkey behind it) would refuse `access`, leave its user unable to
    sign in, or return it rewritten (a change on every preview); empty when it would take it as
    written."""
    problems: list[str] = []
    rules = access.split()
    if "on" not in rules and "off" not in rules:
        problems.append("no 'on' (nor 'off'): ElastiCache creates the user switched off")
    for rule in rules:
        if rule.startswith(_PASSWORD_RULES) or rule in ("nopass", "resetpass"):
            problems.append(f"{rule[:1]}…: passwords are set through the API, never in the access string")
        elif rule == "reset":
            problems.append("'reset' would remove the user's passwords")
        elif rule.startswith("+") and rule[1:].split("|")[0] in ELASTICACHE_DISABLED:
            problems.append(f"{rule}: ElastiCache disables this command")
    channels = [n for n, rule in enumerate(rules) if rule.startswith("&")]
    if channels and ("resetchannels" not in rules or rules.index("resetchannels") > channels[0]):
        problems.append("a channel pattern before 'resetchannels': serverless caches start users with "
                        "allchannels, after which Valkey refuses a pattern")
    if not problems:
        forms = [(rule, _RULE.match(rule)) for rule in rules]
        problems += [f"{rule}: not a rule form of ElastiCache's documented examples" for rule, form in forms
                     if form is None]
        problems += [f"{rule}: a first-argument rule ({rule.split('|')[0][1:]} has no subcommands), which Valkey "
                     "deprecates and ElastiCache does not document: grant the command and limit its keys"
                     for rule, form in forms if form and form["container"] and form["container"] not in CONTAINERS]
    if not problems and rendered(access) != access:
        problems.append(f"ElastiCache would return it as {rendered(access)!r}: the provider would show a change "
                        "on every preview; write it in that form")
    return problems


def checked(access: str) -> str:
    """`access`, or a clear error at preview naming what ElastiCache would refuse or rewrite."""
    problems = elasticache_problems(access)
    if problems:
        raise ValueError("the store user's access string: " + "; ".join(problems))
    return access
