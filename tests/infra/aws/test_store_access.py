"""The store user's access string (stacks/shared/store_access.py, stacks/aws/store_access.py): exactly the commands the
dispatcher's code sends, on its keys and channels, within ElastiCache's rules.

The commands come from the code (tests/support/store_commands.py), never from a list typed here:
a command the code starts sending fails the first test until the access string grants it, and one
it stops sending fails it until the grant goes. A real redis-server then says what the string
allows, command by command, and that it allows nothing else.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.maint_notifications import MaintNotificationsConfig

from dispatcher.store.client import DEFAULT_PREFIX, StoreSettings, connect
from stacks.aws.store import USER
from stacks.aws.store_access import CONTAINERS, checked, elasticache_problems, rendered
from stacks.shared.store_access import ACCESS, CHANNEL_PATTERN, COMMANDS, KEY_PATTERN, PREFIX
from tests.support.redis_server import ENGINES, RedisServer, redis_server
from tests.support.store_commands import UnreadableCommand, commands_in, dispatcher_commands, dispatcher_scripts

SIGN_IN = frozenset({"hello"})  # a user may always sign in: no grant (the server test below shows it)
KEY = f"{PREFIX}owner:s-1"
CHANNEL = f"{PREFIX}media:r-1"
NUMKEYS = {"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"}
PUBSUB = {"publish", "subscribe", "psubscribe", "ssubscribe", "spublish"}


def test_the_access_string_grants_exactly_the_commands_the_dispatchers_code_sends() -> None:
    sent = dispatcher_commands()
    assert {"time", "publish", "subscribe", "evalsha", "zremrangebyscore"} <= set(sent)  # the reading reads
    needed = set(sent) - SIGN_IN
    missing, unused = needed - set(COMMANDS), set(COMMANDS) - needed
    assert not missing, f"sent by the code, refused by the access string: { {c: sorted(sent[c]) for c in missing} }"
    assert not unused, f"granted, and the code sends none of them: {sorted(unused)}"


@pytest.mark.parametrize(("source", "sent"), [
    ("async def f(s):\n    await s._store.redis.hincrby('k', 'f', 1)", {"hincrby"}),
    ("async def f(store):\n    await store.call(store.redis.time)", {"time"}),  # handed over, not called here
    ("X = '''\nlocal t = redis.call('TIME')\nredis.pcall(\"XADD\", KEYS[1], '*', 'a', t[1])\n'''", {"time", "xadd"}),
    ("def f(c, ch):\n    return c.pack_command('PUBLISH', ch, b'x')", {"publish"}),
    ("async def f(pubsub):\n    await pubsub.psubscribe('p*')", {"psubscribe"}),
    ("def f(self):\n    self._x = self._store.redis.register_script('return 1')", {"evalsha", "script|load"}),
    ("async def f(self):\n    return [k async for k in self._store.redis.scan_iter(match='x*')]", {"scan"}),
    ("async def f(self):\n    await self._client().pubsub().subscribe('c')", {"subscribe"}),
])
def test_a_command_is_found_wherever_and_however_the_code_sends_it(source: str, sent: set[str]) -> None:
    assert set(commands_in(source, "new.py")) == sent


@pytest.mark.parametrize("source", [
    "X = \"redis.call(KEYS[2], 'x')\"",
    "async def f(r, name):\n    await r.execute_command(name, 'k')",
])
def test_a_command_the_code_does_not_spell_out_is_an_error_not_a_gap(source: str) -> None:
    with pytest.raises(UnreadableCommand):
        commands_in(source, "new.py")


def test_its_keys_and_channels_are_those_under_the_dispatchers_prefix() -> None:
    assert PREFIX == DEFAULT_PREFIX == StoreSettings(url="redis://x").prefix
    assert KEY_PATTERN == CHANNEL_PATTERN == DEFAULT_PREFIX + "*"


def test_the_access_string_follows_elasticaches_rules() -> None:
    assert elasticache_problems(ACCESS) == []


@pytest.mark.parametrize(("access", "problem"), [
    ("on ~{voicefleet}:* &{voicefleet}:* -@all +@read +@write +@pubsub +@scripting +@connection -@dangerous",
     "channel pattern before 'resetchannels'"),
    ("~k resetchannels -@all +get", "no 'on'"),
    ("on >hunter2hunter2hunter2 ~k -@all +get", "passwords are set through the API"),
    ("on nopass ~k -@all +get", "passwords are set through the API"),
    ("reset on ~k -@all +get", "'reset'"),
    ("on ~k -@all +config|get", "disables this command"),
    # what the service would return rewritten: a change on every preview
    ("on ~k -@all +get", "would return it as 'on ~k &* -@all +get'"),  # serverless: every channel
    ("on ~k resetchannels -@all +get +get", "would return it as"),
    ("on ~k resetchannels +get -@all +set", "would return it as"),
    ("on ~a ~* resetchannels -@all +get", "would return it as 'on ~* resetchannels -@all +get'"),
    # rule forms outside ElastiCache's documented examples
    ("on ~k resetchannels -@all %R~x", "not a rule form"),
    ("on ~k resetchannels -@all (+get ~x)", "not a rule form"),
    ("on allkeys resetchannels -@all +get", "not a rule form"),
    ("on ~k resetchannels -@all +GET", "not a rule form"),
    # a first-argument rule: Valkey warns it "may get disabled", ElastiCache lists `|` for subcommands only
    ("on ~k resetchannels -@all +evalsha|2c9015c9b26ef797872c01adf4ad4ffa3a2e3732", "a first-argument rule"),
    ("on ~k resetchannels -@all +select|0", "a first-argument rule"),
])
def test_an_access_string_elasticache_would_refuse_is_refused(access: str, problem: str) -> None:
    assert any(problem in found for found in elasticache_problems(access)), elasticache_problems(access)
    with pytest.raises(ValueError, match="the store user's access string"):
        checked(access)  # at preview, before any call to ElastiCache


def test_the_access_string_is_written_as_elasticache_returns_it() -> None:
    assert rendered(ACCESS) == ACCESS == checked(ACCESS)


def test_every_command_is_granted_by_name_and_a_subcommand_only_under_its_container() -> None:
    """No first-argument rule: `+evalsha` as a command, `|` only between a container and its
    subcommand (`script|load`), the one form Valkey takes without a deprecation warning."""
    rules = ACCESS.split()
    assert "+evalsha" in rules and "+eval" not in rules
    split = [rule[1:].split("|") for rule in rules if "|" in rule]
    assert ["script", "load"] in split
    assert all(container in CONTAINERS for container, _ in split)


_LOOP = re.compile(r"\b(while|repeat|goto)\b|\bfor\b(?P<head>[^\n]*?)\bdo\b")
_BOUNDED_FOR = re.compile(r"^\s*(\w+\s*=\s*[^,]+,[^,]+(,[^,]+)?|[\w, ]+\bin\s+ipairs\(.+\))\s*$")


def test_the_dispatchers_scripts_loop_only_over_what_they_are_given() -> None:
    """What bounds a script's time: the user can run no script but these, and these loop only over
    their arguments or a command's reply (`ipairs`, a counted `for`), never `while`/`repeat`."""
    loops = {where: [m.group(0) for m in _LOOP.finditer(text)] for where, text in dispatcher_scripts().items()}
    unbounded = {w: [loop for loop in found if not (loop.startswith("for") and _BOUNDED_FOR.match(loop[3:-2]))]
                 for w, found in loops.items()}
    assert {w: found for w, found in unbounded.items() if found} == {}
    assert sum(len(found) for found in loops.values()) >= 5  # the reading reads
    assert _BOUNDED_FOR.match(" _, x in ipairs(ARGV) ") and not _BOUNDED_FOR.match(" k, v in pairs(t) ")


# --- what a real server makes of it ---------------------------------------------------------------

@pytest.fixture(scope="module", params=ENGINES)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Each engine: Debian's redis-server, and Valkey, the engine ElastiCache Serverless runs."""
    with redis_server(Path(tmp_path_factory.mktemp("redis")), binary=request.param) as running:
        yield running


@pytest.fixture(scope="module")
def admin(server: RedisServer) -> Iterator[redis.Redis]:
    with server.admin() as client:
        yield client


def dryrun(admin: redis.Redis, user: str, command: str, arity: int) -> str:
    """The server's verdict on `user` running `command` with arguments of the right count, every
    one of them a key (or channel) under the dispatcher's prefix."""
    words = command.split("|")
    count = abs(arity) - len(words)
    args = ["0" * 40, "1", KEY] if command in NUMKEYS else [CHANNEL if command in PUBSUB else KEY] * count
    try:
        return str(admin.execute_command("ACL", "DRYRUN", user, *words, *args))
    except redis.ResponseError as exc:
        return f"error: {exc}"


def every_command(admin: redis.Redis) -> dict[str, int]:
    """Every command the server knows, subcommands one by one (a container alone runs nothing)."""
    found: dict[str, int] = {}
    for name, info in admin.command().items():
        subcommands = info.get("subcommands") or []
        for sub in subcommands:
            found[str(sub[0])] = int(sub[1])
        if not subcommands:
            found[name] = int(info["arity"])
    return found


async def test_a_dispatcher_connection_signs_in_with_hello_and_sends_nothing_else_of_its_own(
    server: RedisServer, admin: redis.Redis
) -> None:
    """redis-py would also name itself (CLIENT SETINFO, which the access string does not grant) and
    ask for maintenance notifications (CLIENT MAINT_NOTIFICATIONS, unknown to Valkey) on every
    connection unless told not to (dispatcher/store/client.py `connect`)."""
    errors = admin.info("errorstats")
    log = server.record()
    try:
        client = connect(StoreSettings(url=server.url, password=server.password), decode_responses=True)
        await client.get(KEY)
        await client.aclose()
        for _ in range(200):  # MONITOR reports a moment later
            if "get" in log.commands():
                break
            await asyncio.sleep(0.05)
    finally:
        log.close()
    assert log.commands() == {"hello", "get"}
    assert admin.info("errorstats") == errors  # nor anything the server does not know


def test_the_stack_user_may_run_every_command_the_code_sends_on_its_keys_and_channels(admin: redis.Redis) -> None:
    arity = every_command(admin)
    verdicts = {command: dryrun(admin, USER, command, arity[command]) for command in dispatcher_commands()}
    assert {c: v for c, v in verdicts.items() if v != "OK"} == {}


@pytest.mark.parametrize("command", [("get", "other"), ("set", "other", "x"), ("publish", "other", "x"),
                                     ("subscribe", "other"), ("publish", "{voicefleet}", "x")])
def test_the_stack_user_is_refused_keys_and_channels_outside_the_prefix(admin: redis.Redis,
                                                                         command: tuple[str, ...]) -> None:
    assert "no permissions" in str(admin.execute_command("ACL", "DRYRUN", USER, *command))


def test_the_stack_user_may_run_nothing_else(admin: redis.Redis) -> None:
    """Of everything the server knows, what the stack's user may run beyond a user granted no
    command at all is exactly the access string's list."""
    admin.execute_command("ACL", "SETUSER", "nothing", "on", "nopass", "~*", "&*", "-@all")
    try:
        known = every_command(admin)
        allowed = {c for c, n in known.items() if dryrun(admin, USER, c, n) == "OK"}
        baseline = {c for c, n in known.items() if dryrun(admin, "nothing", c, n) == "OK"}
    finally:
        admin.execute_command("ACL", "DELUSER", "nothing")
    assert SIGN_IN <= baseline  # AUTH needs no grant
    assert allowed - baseline == set(COMMANDS)
    for dangerous in ("flushall", "flushdb", "keys", "config|set", "config|get", "debug", "eval", "script|flush",
                      "psubscribe", "monitor", "acl|setuser", "client|kill", "shutdown", "swapdb", "migrate",
                      "fcall", "function|load", "eval_ro", "evalsha_ro"):
        assert dangerous in known and dangerous not in allowed, dangerous


def test_the_engine_takes_the_access_string_without_a_deprecation_warning(server: RedisServer,
                                                                          admin: redis.Redis) -> None:
    """The server took the stack's string when it made the user (tests/support/redis_server.py) and
    warned of nothing; a first-argument rule, by contrast, draws the engine's deprecation warning."""
    assert [line for line in server.warnings() if "eprecat" in line] == []
    admin.execute_command("ACL", "SETUSER", "first-arg", "+evalsha|" + "0" * 40)
    try:
        assert any("Deprecation warning" in line and "+evalsha|" in line for line in server.warnings())
    finally:
        admin.execute_command("ACL", "DELUSER", "first-arg")


def test_the_containers_are_the_servers(admin: redis.Redis) -> None:
    assert {name for name, info in admin.command().items() if info.get("subcommands")} == CONTAINERS


def test_a_script_runs_with_the_users_own_grants(server: RedisServer, admin: redis.Redis) -> None:
    """Whoever holds the store's password may load and run a script of its own (a restarted cache
    forgets the dispatcher's, and redis-py loads them again), but the script runs command by
    command as the user: no command, key or channel the user may not touch itself."""
    kept = f"{PREFIX}kept"
    admin.set(kept, "1")
    with redis.Redis.from_url(server.url, password=server.password, socket_timeout=10, driver_info=None,
                              maint_notifications_config=MaintNotificationsConfig(enabled=False)) as user:
        own = "return redis.call('GET', KEYS[1])"
        assert user.evalsha(user.script_load(own), 1, KEY) is None  # under the prefix: runs
        for script in ("return redis.call('GET', 'other')", "return redis.call('FLUSHALL')",
                       "return redis.call('KEYS', '*')",
                       "return redis.call('PUBLISH', 'other', 'x')"):
            with pytest.raises(redis.ResponseError, match="(?i)permission|can't"):
                user.evalsha(user.script_load(script), 0)
        for attempt in (lambda: user.eval(own, 1, KEY), lambda: user.evalsha(user.script_load(own), 1, "other"),
                        lambda: user.execute_command("FUNCTION", "LOAD", f"#!lua name=x\n{own}"),
                        lambda: user.execute_command("FCALL", "x", 0), lambda: user.script_flush()):
            with pytest.raises(redis.exceptions.NoPermissionError):
                attempt()
        assert admin.get(kept) == "1"  # FLUSHALL did not run
    admin.delete(kept)
    refused = server.refused()
    server.forget_refusals()
    assert {(entry["reason"], entry["object"]) for entry in refused} == {
        ("key", "other"), ("command", "flushall"), ("command", "keys"), ("channel", "other"),
        ("command", "eval"), ("command", "function|load"), ("command", "fcall"), ("command", "script|flush")}


@pytest.mark.parametrize("access", [
    ACCESS, "off resetchannels -@all", "on ~k -@all +get", "on allkeys resetchannels &c -@all +get +set +get",
    "on ~a ~b resetchannels &c &d +get -@all +set +script|load +config|get",
    "on ~k resetchannels &c &d -@all +get +set +get", "on ~a ~* resetchannels -@all +@all",
])
def test_the_model_of_the_read_back_renders_the_rules_as_the_server_does(admin: redis.Redis, access: str) -> None:
    """`rendered` against a real server's ACL LIST of a fresh user (channels starting at every
    channel, as on ElastiCache Serverless): the same flags, keys and channels in the same order,
    the same command rules (Redis 7.0 orders those its own way; Valkey 7.2 and later as given)."""
    admin.execute_command("ACL", "DELUSER", "model")
    admin.execute_command("ACL", "SETUSER", "model", *access.split())
    try:
        lines = [line.decode() if isinstance(line, bytes) else line for line in admin.execute_command("ACL", "LIST")]
    finally:
        admin.execute_command("ACL", "DELUSER", "model")
    (line,) = [entry for entry in lines if entry.startswith("user model ")]
    server = [rule for rule in line.split()[2:] if rule not in ("nopass", "sanitize-payload")]
    model = rendered(access).split()

    def split(rules: list[str]) -> tuple[list[str], list[str]]:
        return [r for r in rules if r[:1] not in "+-"], sorted(r for r in rules if r[:1] in "+-")

    assert split(server) == split(model)


def test_the_server_renders_the_access_string_with_the_same_rules_only_reordered(admin: redis.Redis) -> None:
    """ElastiCache answers DescribeUsers with its engine's rendering of the rules, and the provider
    stores that without diff suppression (terraform-provider-aws `user.go` Read), so a string the
    engine rewrites (`allkeys` -> `~*`, a category into commands) would be a change on every
    preview. Written in the engine's own tokens (`resetchannels` and `+script|load` included), the
    string differs from the rendering at most in the commands' order, which the engine takes from
    its command table."""
    lines = [line.decode() if isinstance(line, bytes) else line for line in admin.execute_command("ACL", "LIST")]
    (line,) = [entry for entry in lines if entry.startswith(f"user {USER} ")]
    engine_default = {"sanitize-payload"}  # the engine's own default, ElastiCache's to echo or not
    rendered = [rule for rule in line.split()[2:] if not rule.startswith(("#", ">")) and rule not in engine_default]
    assert sorted(rendered) == sorted(ACCESS.split())
