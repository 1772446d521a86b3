"""`MACHINES=local`: one bot subprocess per session on this host, talking SmallWebRTC.

The bot listens on nothing: it dials this dispatcher's control channel (`BOT_CHANNEL_URL` and
its own machine's credential `BOT_CHANNEL_TOKEN`, both in its environment) and takes its signalling there.
It announces readiness on stdout (`{"event": "ready"}`), after the channel welcomed it, so
readiness is observed, not guessed, and an offer that follows finds the bot's channel.
Each bot runs in its own process group and receives SIGTERM if the dispatcher dies (Linux
parent-death signal), so a killed dispatcher leaves no orphans; every exit is reaped. A bot is given
an allow-listed environment (bot_env.py) and a sandbox domain of its own (isolation.py): it cannot
read the dispatcher's secrets or another bot's credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from botchannel.contract import CHANNEL_TOKEN_VARIABLE, CHANNEL_URL_VARIABLE, IMAGE_VARIABLE, MACHINE_ID_VARIABLE
from botchannel.json_input import parse_json
from botchannel.utf8_text import may_hold_surrogates, utf8_strings
from dispatcher.channel.access import ChannelAccess
from dispatcher.channel.identity import MachineIdentity
from dispatcher.machines.base import (
    IdleMachine,
    LaunchResult,
    LaunchSpec,
    Machine,
    MachinesError,
    MachineState,
    WaitTimeout,
)
from dispatcher.machines.bot_environment import SESSION_VARIABLES, bot_environment
from dispatcher.machines.local.bot_env import inherited, parse_named
from dispatcher.machines.local.bot_logs import forward_bot_logs
from dispatcher.machines.local.bot_version import BotFilesVersion
from dispatcher.machines.local.isolation import BotIsolation, check_policy
from dispatcher.machines.local.launch_proof import LaunchedProcesses
from dispatcher.machines.local.spawn import BotRefused, spawn_bot
from dispatcher.outbound.ratelimit import Rate
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.settings import listed_transports
from voicefleet_settings.read import setting_choice, setting_float, setting_text

log = logging.getLogger("dispatcher.machines.local.provider")

# `bot` is a top-level package of this repository (not installed): make it importable for the
# bot process wherever the dispatcher was started from.
REPO_ROOT = str(Path(__file__).resolve().parents[3])

# Ended sessions stay visible to GET /sessions/{id} for this long, then are forgotten.
KEEP_ENDED_SECONDS = 600.0


@dataclass(frozen=True)
class LocalSettings:
    bot_command: tuple[str, ...] = (sys.executable, "-m", "bot")
    stop_grace_seconds: float = 5.0
    bot_env: tuple[str, ...] = ()  # LOCAL_BOT_ENV: the user's bot's own variables, by name
    isolation: str = "auto"  # LOCAL_BOT_ISOLATION
    bot_file: Path | None = None  # BOT_FILE (None: the parrot): the files idle bots must have imported
    # The deployment's default transport (the first of TRANSPORTS): the one its reserve bots serve,
    # as a cloud image's BOT_TRANSPORT; a Daily-only deployment's reserve then takes its sessions warm.
    reserve_transport: str = "webrtc"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LocalSettings:
        raw_command = setting_text(env, "LOCAL_BOT_COMMAND")
        # A bot whose dependencies are not voicefleet's runs with its own interpreter (a virtualenv's
        # python): the host comes from this repository (PYTHONPATH), the bot's imports from there.
        python = setting_text(env, "BOT_PYTHON")
        default = (python, "-m", "bot") if python else cls.bot_command
        bot_env = parse_named(setting_text(env, "LOCAL_BOT_ENV"))
        if unset := [name for name in bot_env if name not in env]:
            # Otherwise the bot meets it first, as its service's "no API key" error naming no way out.
            log.warning("LOCAL_BOT_ENV names %s, which this dispatcher's environment does not set: its bots get "
                        "nothing for it (export it, or put it in the dispatcher's environment, then restart)",
                        ", ".join(unset))
        return cls(
            bot_command=tuple(shlex.split(raw_command)) if raw_command else default,
            stop_grace_seconds=setting_float(env, "LOCAL_STOP_GRACE_SECONDS"),
            bot_env=bot_env,
            isolation=check_policy(setting_choice(env, "LOCAL_BOT_ISOLATION")),
            bot_file=_bot_file(env),
            reserve_transport=listed_transports(env, "local")[0],
        )


@dataclass
class _Bot:
    spec: LaunchSpec
    grant: tuple[str, str]  # the kind and subject of its channel credential (its launch socket's key)
    created_at: float = field(default_factory=time.time)
    process: asyncio.subprocess.Process | None = None
    state: MachineState = MachineState.STARTING
    detail: str | None = None
    stop_requested: bool = False
    ended_at: float | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    monitor: asyncio.Task[None] | None = None
    logs: asyncio.Task[None] | None = None

    def set_state(self, state: MachineState, detail: str | None = None) -> None:
        if self.state in (MachineState.ENDED, MachineState.FAILED):
            return  # terminal states are final
        self.state = state
        if detail is not None:
            self.detail = detail
        if not state.is_active:
            self.ended_at = time.time()
        # Wake everyone waiting on a change, then re-arm for the next one.
        self.changed.set()
        self.changed = asyncio.Event()

    @property
    def pid(self) -> int:
        return self.process.pid if self.process else -1

    def machine(self) -> Machine:
        return Machine(
            session_id=self.spec.session_id,
            machine_id=f"pid-{self.process.pid}" if self.process else "pid-pending",
            state=self.state,
            created_at=self.created_at,
            body_digest=self.spec.body_digest,
            detail=self.detail,
            transport=self.spec.transport or "webrtc",  # local bots serve SmallWebRTC
            release=self.spec.release,
        )


class LocalMachines:
    name = "local"
    def __init__(self, settings: LocalSettings | None = None) -> None:
        # A process has no identity a provider signs: a hello proves it comes from the process
        # launched for its credential through that process's own launch socket (launch_proof.py).
        self._launched = LaunchedProcesses()
        self.identity: MachineIdentity = self._launched
        self._settings = settings or LocalSettings()
        self._isolation = BotIsolation.for_this_host(self._settings.isolation)
        self._bots: dict[str, _Bot] = {}
        self._idle: dict[str, _Bot] = {}  # reserve bots by bot id, not claimed yet
        self._closed = False
        self._channel: ChannelAccess | None = None
        bot_file = self._settings.bot_file or _bot_file({})
        self._bot_files = BotFilesVersion(bot_file) if bot_file is not None else None
        self._release_files: dict[str, BotFilesVersion] = {}  # a release's bot file → its folder's version
        # Each release's own settings (BOT_RELEASES' `@python` as BOT_PYTHON), by release name: a
        # reserve bot of a release runs its interpreter as its cold sessions do (dispatcher/wiring.py).
        self.release_envs: Mapping[str, Mapping[str, str]] = {}
        self.end_listeners: list[Callable[[Machine], None]] = []  # told each session bot's exit (ReportsEnds)

    def bot_variables(self) -> frozenset[str]:
        """The names of the non-empty variables each bot gets from this host's environment (`/healthz`
        says from them which carriers' credentials bots lack: dispatcher/phone/bot_credentials.py)."""
        return frozenset(name for name, value in inherited(os.environ, self._settings.bot_env).items() if value)
    def attach_channel(self, access: ChannelAccess) -> None:
        """Where bots dial in; without it (a bare library use) they get no channel to talk on."""
        self._channel = access

    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        if self._closed:
            raise MachinesError("shutting_down", "the dispatcher is shutting down", retry_after=1.0)
        self._forget_old()
        existing = self._bots.get(spec.session_id)
        if existing is not None:
            return LaunchResult(existing.machine(), created=False)
        # Registered before the first await: a concurrent launch of the same session sees it.
        bot = self._bots[spec.session_id] = _Bot(spec, ("session", spec.session_id))
        await self._spawn(bot, self._command(spec), self._environment(spec))
        log.info("session %s: bot pid %d starting", spec.session_id, bot.pid)
        return LaunchResult(bot.machine(), created=True)

    async def _spawn(self, bot: _Bot, command: list[str], env: dict[str, str]) -> None:
        launch_socket = self._launched.launching(*bot.grant)
        env.update(launch_socket.environment())
        try:
            bot.process = await spawn_bot(self._isolation, command, env, keep_fd=launch_socket.child.fileno(),
                                          spawned=launch_socket.launched)  # only its writes prove a launch
        except (OSError, BotRefused) as exc:
            self._launched.forget(*bot.grant)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            bot.set_state(MachineState.FAILED, f"could not start the bot: {reason}")
            raise MachinesError("local_rejected", f"could not start the bot process: {reason}") from exc
        except BaseException:  # cancelled mid-start (spawn.py killed its launcher): nothing of it stays
            self._launched.forget(*bot.grant)
            bot.set_state(MachineState.FAILED, "the start was cancelled")
            raise
        finally:
            launch_socket.handed_over()
        bot.monitor = asyncio.create_task(self._monitor(bot), name=f"bot-{bot.spec.session_id}")
        assert bot.process.stderr is not None
        bot.logs = asyncio.create_task(forward_bot_logs(bot.process.stderr, lambda: bot.spec.session_id),
                                       name=f"bot-logs-{bot.spec.session_id}")

    # --- the warm reserve (dispatcher/reserve/reserve.py): bots started before their session ----------

    @property
    def bot_file(self) -> Path | None:
        """The Pipecat bot file every local bot runs (`BOT_FILE`, or the parrot); None without the bot host."""
        return self._bot_files.bot_file if self._bot_files is not None else None

    @property
    def bot_image(self) -> str:
        """The bot's files as they are now: an idle bot that imported older ones is never claimed."""
        return self._bot_files.current() if self._bot_files is not None else "dev"

    def reported_image(self, image: str | None) -> str:
        """What an idle bot of the release whose bot file is `image` reports: that file's folder as
        it is now (None: BOT_FILE's), so an edit there retires the release's idle bots, not another's."""
        if image is None:
            return self.bot_image
        version = self._release_files.get(image)
        if version is None:
            version = self._release_files[image] = BotFilesVersion(Path(image))
        return version.current()

    async def launch_idle(self, bot_id: str, channel_token: str | None = None, *,
                          image: str | None = None, release: str = DEFAULT_RELEASE) -> None:
        """Starts a reserve bot of `release` (its bot file `image`, None: BOT_FILE): no session, it
        dials the channel and waits for one `assign` of the deployment's default transport (a bot whose
        Python has only the other web transport serves that one instead: bot/missing_extra.py)."""
        if self._closed:
            raise MachinesError("shutting_down", "the dispatcher is shutting down", retry_after=1.0)
        placeholder = LaunchSpec(session_id=bot_id, body_digest="", max_session_seconds=1, release=release,
                                 image=image, release_env=self.release_envs.get(release, {}))
        bot = self._idle[bot_id] = _Bot(placeholder, ("idle", bot_id))
        env = self._environment(placeholder)
        for name in (*SESSION_VARIABLES, CHANNEL_TOKEN_VARIABLE):  # no session yet: the assignment brings it
            env.pop(name, None)
        env[MACHINE_ID_VARIABLE] = bot_id
        env[IMAGE_VARIABLE] = self.reported_image(image)
        if channel_token is not None:
            env[CHANNEL_TOKEN_VARIABLE] = channel_token
        try:
            await self._spawn(bot, [*self._interpreter(placeholder), "--transport", self._settings.reserve_transport],
                              env)
        except BaseException:  # refused or cancelled: no placeholder stays listed as an idle bot
            del self._idle[bot_id]
            raise
        log.info("reserve bot %s: pid %d starting", bot_id, bot.pid)

    async def adopt(self, bot_id: str, spec: LaunchSpec) -> LaunchResult:
        """The claimed (and already assigned) reserve bot becomes `spec`'s session's machine.

        If the session got a machine meanwhile (a concurrent start of the same key), that one
        wins and the claimed bot is retired: a bot never serves a second session, nor waits for one.
        """
        bot = self._idle.pop(bot_id, None)
        existing = self._bots.get(spec.session_id)
        if existing is not None or bot is None or not bot.state.is_active:
            if bot is not None:
                await self._terminate(bot)
            if existing is not None:
                return LaunchResult(existing.machine(), created=False)
            raise MachinesError("reserve_bot_gone", f"reserve bot {bot_id} exited before its claim")
        bot.spec, bot.created_at = spec, time.time()
        self._bots[spec.session_id] = bot
        bot.set_state(MachineState.STARTED)  # the bot acknowledged its assignment
        log.info("session %s: claimed reserve bot %s (pid %d)", spec.session_id, bot_id, bot.pid)
        return LaunchResult(bot.machine(), created=True, claimed=True)

    async def retire(self, bot_id: str) -> None:
        """Stops a reserve bot that will never be claimed (too old, old image, surplus, no channel)."""
        bot = self._idle.pop(bot_id, None)
        if bot is not None:
            await self._terminate(bot)

    @property
    def create_rate(self) -> Rate | None:
        """None: starting a process has no provider limit to mirror."""
        return None

    def image_missing(self, image: str | None) -> str | None:
        """A release's bot file (None: BOT_FILE's) that is no longer a file: every session would fail."""
        bot_file = Path(image) if image is not None else self.bot_file
        if bot_file is None or bot_file.is_file():
            return None
        return f"its bot file {bot_file} is gone"

    def exit_detail(self, bot_id: str) -> str | None:
        """Why a reserve bot exited before its hello (its exit and its own `ended` detail), if it did."""
        bot = self._idle.get(bot_id)
        return bot.detail if bot is not None and not bot.state.is_active else None

    async def idle_machines(self) -> list[IdleMachine]:
        """Reserve bots still running (warming or idle)."""
        return [IdleMachine(bot_id, bot.created_at) for bot_id, bot in self._idle.items() if bot.state.is_active]

    def _command(self, spec: LaunchSpec) -> list[str]:
        # Nothing of the session goes on the command line: any process may read another's
        # /proc/<pid>/cmdline, Landlock or not, and a session id is what a keyless API takes.
        # The id travels in the environment (VOICEFLEET_SESSION_ID), with the body and the credential.
        return [
            *self._interpreter(spec),
            "--transport", spec.transport or "webrtc",
            "--max-duration", str(spec.max_session_seconds),
        ]  # fmt: skip

    def _interpreter(self, spec: LaunchSpec) -> list[str]:
        python = spec.release_env.get("BOT_PYTHON")  # a release's own interpreter (BOT_RELEASES' `@python`)
        return [python, "-m", "bot"] if python else list(self._settings.bot_command)

    async def _monitor(self, bot: _Bot) -> None:
        process = bot.process
        assert process is not None and process.stdout is not None
        said: object = None  # the bot's own account of why it ended (its `ended` event)
        failed = False  # the bot said it failed (a non-zero exit code): a stop that followed does not hide it
        async for raw in process.stdout:
            event = _parse_event(raw)
            kind = event.get("event")
            if kind == "ready":
                bot.set_state(MachineState.STARTED)
            elif kind == "connected" and bot.state is MachineState.STARTED:
                bot.set_state(MachineState.JOINED)
            elif kind == "ended":
                said = event.get("detail")
                failed = event.get("exit_code") not in (None, 0)
        code = await process.wait()  # reaps the child: no zombies
        self._launched.forget(*bot.grant)  # nothing speaks for it any more
        if (bot.stop_requested or code == 0) and not failed:
            bot.set_state(MachineState.ENDED, "stopped" if bot.stop_requested else "exit code 0")
        else:
            # The reason reaches the API (`detail`), not only the dispatcher's stderr.
            reason = f": {said}" if isinstance(said, str) and said else ""
            bot.set_state(MachineState.FAILED, f"{_describe_exit(code)}{reason}")
        log.info("session %s: bot pid %d exited (%s)", bot.spec.session_id, process.pid, bot.detail,
                 extra={"session_id": bot.spec.session_id})  # a reserve bot's watcher predates its session
        if self._bots.get(bot.spec.session_id) is bot:  # a session's (a reserve bot's exit ends no session)
            for listener in self.end_listeners:
                listener(bot.machine())

    async def wait_started(self, session_id: str, timeout: float) -> Machine:
        bot = self._bots.get(session_id)
        if bot is None:
            raise MachinesError("not_found", f"no session {session_id}")
        deadline = asyncio.get_running_loop().time() + timeout
        while bot.state is MachineState.STARTING:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise WaitTimeout(session_id, timeout)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(bot.changed.wait(), remaining)
        return bot.machine()

    async def status(self, session_id: str) -> Machine | None:
        bot = self._bots.get(session_id)
        return bot.machine() if bot else None

    async def stop(self, session_id: str) -> bool:
        bot = self._bots.get(session_id)
        if bot is None:
            return False
        await self._terminate(bot)
        return True

    async def _terminate(self, bot: _Bot) -> None:
        process = bot.process
        if process is None or process.returncode is not None:
            return
        bot.stop_requested = True
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self._exited(bot)), self._settings.stop_grace_seconds)
        except TimeoutError:
            log.warning("session %s: bot ignored SIGTERM for %gs, killing it",
                        bot.spec.session_id, self._settings.stop_grace_seconds)
            _signal_group(process.pid, signal.SIGKILL)
            await self._exited(bot)

    @staticmethod
    async def _exited(bot: _Bot) -> None:
        if bot.monitor is not None:
            await bot.monitor  # the monitor reaps and records the final state

    async def list(self) -> list[Machine]:
        # An exited bot holds nothing (its process is reaped), so only live bots are listed;
        # ended ones stay visible to `status` for KEEP_ENDED_SECONDS.
        self._forget_old()
        return [bot.machine() for bot in self._bots.values() if bot.state.is_active]

    async def aclose(self) -> None:
        self._closed = True
        bots = [*self._bots.values(), *self._idle.values()]
        await asyncio.gather(*(self._terminate(bot) for bot in bots))
        self._launched.close()

    def _forget_old(self) -> None:
        horizon = time.time() - KEEP_ENDED_SECONDS
        for session_id, bot in list(self._bots.items()):
            if bot.ended_at is not None and bot.ended_at < horizon:
                del self._bots[session_id]

    def _environment(self, spec: LaunchSpec) -> dict[str, str]:
        env = _bot_environment(spec, self._channel, self._settings.bot_env)
        if spec.image is not None:  # a release's bot file (BOT_RELEASES), in place of BOT_FILE
            env["BOT_FILE"] = spec.image
        return env


def _bot_file(env: Mapping[str, str]) -> Path | None:
    """The bot's own rule for which file it runs (local bots run `python -m bot` from this repository);
    None in an image without the bot host (the dispatcher's own), which runs no local bot."""
    try:
        from bot.user_bot import bot_file_path
    except ImportError:
        return None
    return bot_file_path(env)


def _bot_environment(spec: LaunchSpec, channel: ChannelAccess | None, named: tuple[str, ...]) -> dict[str, str]:
    """The allow-listed part of this host's environment (PATH, the host's settings, the variables
    the user named for their bot), plus the session's values from the one contract every
    provider uses, plus where to dial the channel."""
    env = inherited(os.environ, named)
    env.update(bot_environment(spec))  # with the session's own channel credential, if any
    if channel is not None and channel.url is not None:
        env[CHANNEL_URL_VARIABLE] = channel.url
    env[MACHINE_ID_VARIABLE] = f"local-{spec.session_id}"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH", "")) if p)
    return env


def _parse_event(raw: bytes) -> dict[str, object]:
    """A line of the bot's stdout as its event, its text as UTF-8 can hold it (its `detail` reaches the
    session's answer): bytes not UTF-8 (a surrogate's own, ED A0 80) and `\\ud800` escapes become U+FFFD."""
    text = raw.decode("utf-8", "replace")
    try:
        event = parse_json(text)
    except ValueError:
        return {}
    if may_hold_surrogates(text):
        event = utf8_strings(event)
    return event if isinstance(event, dict) else {}


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # the bot leads its own group: its children get the signal too
