"""What the dispatcher may do in its coordination store on AWS: the RBAC user's access string.

ElastiCache's RBAC users carry Redis/Valkey ACL rules. The dispatcher's user may run exactly the
commands the dispatcher sends, on the keys and channels under its prefix, and nothing else: no
FLUSH*, no CONFIG, no KEYS, no command that reads or wipes the whole store. The command list is
the dispatcher's, not a guess: tests/infra/aws/test_store_access.py reads every command out of the
dispatcher's code (redis-py calls and the commands inside its Lua scripts) and fails when the list
here misses one or grants one the code does not send; the replicas' and the store's tests run as a
user with this very string (tests/support/redis_server.py).

Commands are granted one by one rather than by category: a category such as `@read` or `@write`
holds dozens of commands the dispatcher never sends (and `@fast`, which `TIME` is only in, holds
many more).

ElastiCache's own rules for access strings (docs.aws.amazon.com/AmazonElastiCache/latest/dg/Clusters.RBAC.html):
no password in it (passwords go through the API), no `reset` (it would remove them), `on` or the
user is off, no command ElastiCache disables. Serverless caches run with `acl-pubsub-default
allchannels` (RedisConfiguration.html), and Valkey refuses a channel pattern after `allchannels`,
so the string clears the channels (`resetchannels`) before it names its own.
"""

from __future__ import annotations

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

# ElastiCache disables these for every cache (ClientConfig.RestrictedCommands.html); an access
# string that names one is refused.
ELASTICACHE_DISABLED = frozenset({"bgrewriteaof", "bgsave", "config", "debug", "migrate", "replicaof", "save",
                                  "slaveof", "shutdown", "sync"})
_PASSWORD_RULES = (">", "<", "#", "!")


def access_string(commands: tuple[str, ...] = COMMANDS) -> str:
    granted = " ".join(f"+{command}" for command in commands)
    return f"on ~{KEY_PATTERN} resetchannels &{CHANNEL_PATTERN} -@all {granted}"


ACCESS = access_string()


def elasticache_problems(access: str) -> list[str]:
    """Why ElastiCache (or the Valkey behind it) would refuse `access`, or leave its user unable
    to sign in; empty when it would take it."""
    problems: list[str] = []
    rules = access.split()
    if "on" not in rules:
        problems.append("no 'on': ElastiCache creates the user switched off")
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
    return problems
