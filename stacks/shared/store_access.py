"""What the dispatcher may do in its coordination store: its user's ACL rules, on every stack that makes one.

The dispatcher's user may run exactly the commands the dispatcher sends (granted one by one, never
by category), on the keys and channels under its prefix, and nothing else: no `EVAL`, no functions.
`EVALSHA` is granted as a command: a script runs command by command with the user's own grants,
so whatever script runs touches only these commands, keys and channels. Naming the scripts
themselves (`+evalsha|<sha1>`) would take first-argument rules, which Valkey deprecates and
ElastiCache does not document; what that leaves open is in docs/replicas.md.
tests/infra/aws/test_store_access.py reads every command out of the dispatcher's code
and fails when the lists here miss one or grant one the code does not send; the replicas' and the
store's tests run as a user with this very string (tests/support/redis_server.py).

The AWS stack gives the string to ElastiCache as its user's access string (stacks/aws/store_access.py
holds it to ElastiCache's rules); the k8s stack's in-cluster Valkey reads it from its configuration
file (stacks/k8s/store.py). The reasons, with their sources: docs/replicas.md ("In the stacks, and
what it costs") and docs/security.md.
"""

from __future__ import annotations

# The dispatcher's user: REDIS_URL names it, REDIS_PASSWORD holds its password.
USER = "voicefleet"
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
    "del", "get", "hdel", "hget", "hgetall", "hincrby", "hlen", "hset", "lrange", "ltrim", "pexpire", "rpush", "set",
    "time", "zadd", "zcard", "zcount", "zrange", "zrem", "zremrangebyscore", "zscore",
)
COMMANDS: tuple[str, ...] = tuple(sorted(set(CLIENT_COMMANDS) | set(SCRIPT_COMMANDS)))


def access_string(commands: tuple[str, ...] = COMMANDS) -> str:
    """The rules: each command granted by name, on the dispatcher's keys and channels only."""
    granted = " ".join(f"+{command}" for command in commands)
    return f"on ~{KEY_PATTERN} resetchannels &{CHANNEL_PATTERN} -@all {granted}"


ACCESS = access_string()
