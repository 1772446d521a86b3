"""What the dispatcher may do in its coordination store on AWS: the RBAC user's access string.

The dispatcher's user may run exactly the commands the dispatcher sends (granted one by one, never
by category), on the keys and channels under its prefix, and nothing else; `EVALSHA` only with the
SHA1 of one of the dispatcher's own scripts (`+evalsha|<sha1>`), no `EVAL`, no functions.
tests/infra/aws/test_store_access.py reads every command and script out of the dispatcher's code
and fails when the lists here miss one or grant one the code does not send; the replicas' and the
store's tests run as a user with this very string (tests/support/redis_server.py).

The string follows ElastiCache's rules for access strings (no password, no `reset`, `on`, no
disabled command; `resetchannels` before its own channels on a serverless cache) and is written as
the engine renders a user, so a second preview shows no diff: `elasticache_problems` refuses at
preview what the service would reject or rewrite (`rendered` models the rewriting, and the Pulumi
mocks return it as the user's state). The reasons, with their sources: docs/replicas.md ("In the
stacks, and what it costs") and docs/security.md.
"""

from __future__ import annotations

import re

# dispatcher/store/client.py DEFAULT_PREFIX: every key and channel the dispatcher names starts with
# it (the braces are a cluster hash tag). The Pulumi program's environment has no redis-py, so the
# value is repeated here; tests/infra/aws/test_store_access.py checks that the two agree.
PREFIX = "{voicefleet}:"
KEY_PATTERN = PREFIX + "*"
CHANNEL_PATTERN = PREFIX + "*"

# Sent by the dispatcher's redis-py calls (and the client's connection health check, PING). HELLO,
# with which a connection signs in, needs no grant.
CLIENT_COMMANDS: tuple[str, ...] = (
    "del", "evalsha", "get", "hdel", "lrange", "mget", "ping", "publish", "scan", "script|load", "set", "subscribe",
    "time",
    "zrem",
)
# Run by the Lua scripts (a script runs with its caller's permissions, command by command).
SCRIPT_COMMANDS: tuple[str, ...] = (
    "del", "get", "hdel", "hget", "hgetall", "hset", "lrange", "ltrim", "pexpire", "rpush", "set", "time", "zadd",
    "zcard", "zcount", "zrange", "zrem", "zremrangebyscore",
)
COMMANDS: tuple[str, ...] = tuple(sorted(set(CLIENT_COMMANDS) | set(SCRIPT_COMMANDS)))
# The SHA1 of every Lua script the dispatcher registers (redis-py sends it with EVALSHA), sorted.
SCRIPT_SHAS: tuple[str, ...] = (
    "2c9015c9b26ef797872c01adf4ad4ffa3a2e3732", "2fc07f75e8196cd9abcee32c5c977ba04bb5645d",
    "31598e3c75cf8ec01ade74e11ba8a925b7787963", "39edd7bba0140c72ff5aee71ef149ac966e9738f",
    "3acd628f3aadad5f1e07dfc01d5c2109d04bc11f", "46be5bde3940af3b46d9c3254d0c0a3ca5fcaa07",
    "53cbf049cd0e95ce1ab8cc27dc2cd4aff3cdd354", "6396761b49c58d262da3191d161e68ad41f8ca83",
    "6bcea5fada096ff429327f46183c3a49ef226377", "794b6b254f840999dca41c28522b329a89d51b42",
    "7e4fc0fd36b8e3fd48ee0ede3d1bdb6e4880b281", "8fe19910f4c4ec13a6209813a382d545c394fa84",
    "956bbcf090d9e09b7b3972ef38c7eb63c6828b2c", "9d5aab32bab8f907b056b1412053aca227255f12",
    "ac06c33797c20d1f3309f2de3d4ed7fb0177a73e", "c7902e75d5af9be262eff0df335ed95e6407f079",
    "c8b59fea7a5b2c703fe3e3f93b3379ca8565eb85", "d729e57575c9c288804407dad18ad416fa4e718e",
    "e3df189475c3dd4b4addee23bc41957ed8c2e267", "eb11886ffd3c165acb3798f165547375cc26f280",
    "f3195c9e0a3a03e76b29943dfc5cf114848b78bc", "f39c62c50a28d50753b3627bb1bcabe58c6d1b98",
    "f4088f5a601eb26f17ff92df1f711baf2f02b674", "f4f23e4b63559980e4fd8dd1b2bf8e156fe4c29f",
    "f8e39d3cf22300715ded90fce14fd7d6fa6f264e", "fd163356fd378514300b4835ec6b12515edc51e5",
)

# ElastiCache disables these for every cache (ClientConfig.RestrictedCommands.html); an access
# string that names one is refused.
ELASTICACHE_DISABLED = frozenset({"bgrewriteaof", "bgsave", "config", "debug", "migrate", "replicaof", "save",
                                  "slaveof", "shutdown", "sync"})
_PASSWORD_RULES = (">", "<", "#", "!")


# The scripts of the last release that this one changed or dropped. Its dispatcher tasks keep
# serving their calls through a rolling deploy (and come back on a rollback) while the store's user
# is already this release's, so their scripts stay runnable for one release; pruned at the next
# (docs/pulumi.md, "Changing a store script").
RETIRED_SCRIPT_SHAS: tuple[str, ...] = (
    "4afb2fa53231463da264e57bc046a278f804d62f", "5a5d593954c925e76a45dabc3812a6842201a528",
    "dedd9229af0e410c69910fbfd055cc0f72320a84",
)
GRANTED_SCRIPT_SHAS: tuple[str, ...] = tuple(sorted(set(SCRIPT_SHAS) | set(RETIRED_SCRIPT_SHAS)))


def access_string(commands: tuple[str, ...] = COMMANDS, scripts: tuple[str, ...] = GRANTED_SCRIPT_SHAS) -> str:
    """The rules: EVALSHA is granted for `scripts` only, one first-argument rule each."""
    granted = " ".join(" ".join(f"+evalsha|{sha}" for sha in scripts) if command == "evalsha" else f"+{command}"
                       for command in commands)
    return f"on ~{KEY_PATTERN} resetchannels &{CHANNEL_PATTERN} -@all {granted}"


ACCESS = access_string()


# The rule forms this string may use: those of ElastiCache's documented examples and the providers'
# tests (`on ~app::* -@all +@read …`), with channels and container subcommands or a first argument.
_RULE = re.compile(r"^(on|off|resetchannels|[~&]\S+|[+-]@[a-z]+|[+-][a-z_]+|\+[a-z_]+\|[a-z0-9_]+)$")
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
        problems += [f"{rule}: not a rule form of ElastiCache's documented examples" for rule in rules
                     if not _RULE.match(rule)]
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
