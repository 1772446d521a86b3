"""`python -m sipedge` with `workers` > 1, or a trunk's inbound digest credential (sipedge/config.py
`front_runs`): the edge as Kamailio in front of its PJSIP workers (one, or several), all this process's
children (docs/sip.md#capacity). The front's kamailio.cfg is written into a private temporary folder; its
secrets are tokens made at each start: one the front writes on every request to a worker and the
workers get in their environment, so they believe only the front's own lines; one a worker's own INVITE
carries to the front; one the supervisor's word of the drain carries. Nothing secret goes on a
command line: the workers read the same TOML file and environment as the edge, less the inbound digest
passwords (Kamailio's alone). A child that exits is started again after a backoff that doubles up to
RESTART_MAX_SECONDS; one that keeps failing (RESTART_LIMIT times without staying up STEADY_SECONDS) stops
the edge with a line saying which, so whatever runs the edge restarts it.
A dead worker's calls end with it: the kernel closes its streams to the dispatcher, which ends
their sessions; Kamailio's probes skip it until its replacement answers. With control_port, the edge's
one control API is served here and passes requests on to the workers' own (sipedge/control_front.py).
A stop drains (sipedge/drain.py): the front is told to refuse new INVITEs itself (sipedge/front_drain.py), and
told again should it be started again meanwhile; each worker is told (DRAIN_SIGNAL) and drains its own calls,
Kamailio and the control API still up for their requests, within the workers' bound and their stop; a second
signal stops them at once (SIGTERM, as every other stop of a worker).
Run apart (sipedge/edge_part.py), it supervises one part alone: Kamailio (`front`), which on the stop refuses new
calls and outlasts the workers' SIP ports (sipedge/worker_ports.py), or the workers (`workers`), which tell the
other part's front of the drain as they would their own; the tokens are then both parts' (`Tokens`)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import grp
import logging
import os
import pwd
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

from sipedge.config import EdgeConfig
from sipedge.control_front import CONTROL_LINE, ControlFront
from sipedge.drain import DRAIN_SIGNAL, DRAINED_LINE, FirstSignal, drained
from sipedge.edge_part import Part, Tokens
from sipedge.front_config import FrontFiles, worker_capacity, write_front
from sipedge.front_drain import tell_front_draining
from sipedge.front_key import HandedFiles, hand_over
from sipedge.front_leftover import EdgeRunning, FrontRecord, RecordClaim, claim_record, record_file
from sipedge.front_refusals import LOG_ENGINE, in_group, new_mark, read_front_log, read_line, relayed
from sipedge.front_watch import FrontWatch
from sipedge.log_relay import LogRelay
from sipedge.refusal_log import PERIOD_SECONDS, RefusalLog
from sipedge.stream_lines import cut_lines, lines
from sipedge.worker_place import CALL_TOKEN_VARIABLE, TOKEN_VARIABLE, WORKER_VARIABLE
from sipedge.worker_ports import bound_worker_ports

log = logging.getLogger("sipedge")

KAMAILIO = "/usr/sbin/kamailio"
UNPRIVILEGED_USER, UNPRIVILEGED_GROUP = "nobody", "nogroup"  # Debian's
READY_SECONDS = 60.0  # a worker imports PJSIP and the edge's code: seconds on a loaded host
RESTART_FIRST_SECONDS, RESTART_MAX_SECONDS = 0.5, 30.0
RESTART_LIMIT, STEADY_SECONDS = 8, 60.0
STOP_SECONDS = 10.0
READERS_SECONDS = 5.0  # at the stop, how long the children's readers have to reach their pipes' end
EXIT_POLL_SECONDS = 0.1  # how often a child's exit is looked for (its returncode: see `Child.exited`)
PROBE_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1
# Kamailio's parent-death signal: its main process ends its children on SIGTERM (its main.c, handle_sigs);
# SIGKILL would leave them bound to the SIP port.
FRONT_PARENT_DEATH = signal.SIGTERM


def _die_with_parent(signum: signal.Signals) -> Callable[[], None]:
    """In the child before exec: the kernel sends it `signum` if the edge dies, however it dies. The kernel
    sends it when the thread that forked the child ends: asyncio forks on the event loop's thread, which
    `python -m sipedge` runs as its main thread (asyncio.run), so that is the edge's own end."""
    parent = os.getpid()

    def set_signal() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)
        if os.getppid() != parent:  # the edge died before the signal was set: it would never come
            os._exit(1)
    return set_signal


class Child:
    """One supervised process: Kamailio or a worker."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], ready: Callable[[Child], Awaitable[None]],
                 pass_fds: tuple[int, ...] = (), *, reads_stderr: bool = False, own_group: bool = False,
                 parent_death: signal.Signals = signal.SIGKILL):
        """`reads_stderr`: its standard error is the supervisor's to read (Kamailio's log), not passed straight on.
        `own_group`: it runs in a process group of its own, killed whole: Kamailio's children outlive a killed
        main process, still bound to its port, where the next start could not bind. `parent_death`: the signal the
        kernel sends it when the edge dies (Kamailio's main process ends its children on SIGTERM, not on SIGKILL)."""
        self.name, self.argv, self.env, self.pass_fds, self.own_group = name, argv, env, pass_fds, own_group
        self.parent_death = parent_death
        self._stderr = asyncio.subprocess.PIPE if reads_stderr else None
        self._ready = ready
        self.process: asyncio.subprocess.Process | None = None
        self.failures = 0
        self.control_port: int | None = None  # a worker's control API on loopback, while it is up
        self.drained = False  # a worker draining whose calls have all ended (its DRAINED_LINE)

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr, preexec_fn=_die_with_parent(self.parent_death), pass_fds=self.pass_fds,
            start_new_session=self.own_group)
        await self._ready(self)

    async def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(_main_exit(process), STOP_SECONDS)
            except TimeoutError:
                self.kill(process)
        await self.exited(process)

    async def exited(self, process: asyncio.subprocess.Process) -> int:
        """Waits for `process` (one start of this child's) to exit, then kills what is left of its group
        (`own_group`); its exit status. Not `process.wait()` alone: asyncio's, called before the exit, returns only
        once every pipe is closed as well, and Kamailio's children, outliving a crashed main process, hold them
        open. Once they are killed, this start's readers reach their pipes' end on their own."""
        code = await _main_exit(process)
        if self.own_group:
            self.kill(process)
        return code

    def kill(self, process: asyncio.subprocess.Process) -> None:
        """Kills `process` (one start of this child's), its whole group with `own_group`."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.own_group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()


def _running(child: Child) -> bool:
    return child.process is not None and child.process.returncode is None


def _signal(child: Child, signum: signal.Signals) -> None:
    if child.process is not None and child.process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            child.process.send_signal(signum)


async def _main_exit(process: asyncio.subprocess.Process) -> int:
    """`process`'s own exit status once it has exited, whoever still holds its pipes. Polled: asyncio has no
    public event for the exit alone (its child watcher sets `returncode`; `wait()` also waits for the pipes)."""
    while (code := process.returncode) is None:  # noqa: ASYNC110 - no event to wait on, as said above
        await asyncio.sleep(EXIT_POLL_SECONDS)
    return code


class Supervisor:
    def __init__(self, config: EdgeConfig, part: Part = Part.WHOLE, tokens: Tokens | None = None) -> None:
        """`part`: the whole edge, or one part run apart, with the `tokens` both parts hold (else new ones)."""
        self.config, self.part = config, part
        tokens = tokens or Tokens.new()
        self._folder = Path(tempfile.mkdtemp(prefix="sipedge-front-"))  # 0700: this user's only
        self._stopping = asyncio.Event()
        self._stop_now = asyncio.Event()  # a second stop signal: the workers' drain ends at once
        self._first_signal = FirstSignal()
        self.draining = False  # stopping: the workers drain their calls in flight, the front takes no new ones
        self._draining: list[Child] = []  # the workers told to drain, which a second signal stops
        self.failed: str | None = None
        self._relays: set[asyncio.Task[None]] = set()  # the children's output, passed on to ours
        self._tls: HandedFiles | None = None  # the TLS files' descriptors, handed to Kamailio (sipedge/front_key.py)
        self._token = tokens.front  # the front's proof of its lines to the workers (sipedge/worker_place.py)
        self._call_token = tokens.call  # a worker's proof of its own INVITE to the front, never sent by the front
        self._drain_token = tokens.drain  # the supervisor's proof of its word of the drain (sipedge/front_drain.py)
        self._front_child: Child | None = None  # Kamailio, started again even during the drain (`_watch`)
        self.front_refusals = RefusalLog()  # the requests Kamailio refused itself (sipedge/front_refusals.py)
        self._mark = new_mark()  # the front's refusal lines' (sipedge/front_refusals.py): never the workers' token
        # Kamailio's other lines, passed on without the loop waiting on our output (sipedge/log_relay.py).
        self._front_log = LogRelay(lambda: sys.stderr.buffer, "kamailio")
        self._front_output = LogRelay(lambda: sys.stdout.buffer, "kamailio")
        self._worker_output = LogRelay(lambda: sys.stdout.buffer, "a worker")  # the workers' standard output
        self._front_config: Path | None = None  # the kamailio.cfg written for this run
        self._front_record: RecordClaim | None = None  # this run's front's record (sipedge/front_leftover.py)
        self._front_watch: FrontWatch | None = None  # ends the front should the edge die (sipedge/front_watch.py)

    def _keep(self, task: asyncio.Task[None]) -> None:
        """Holds `task` until it ends: the loop itself keeps only a weak reference."""
        self._relays.add(task)
        task.add_done_callback(self._relays.discard)

    def _children(self) -> list[Child]:
        """The workers (but in the front's part), then Kamailio (but in the workers' part)."""
        workers: list[Child] = []
        if self.part is not Part.FRONT:
            env = worker_env(os.environ, self.config)
            workers = [Child(f"worker {index}", [sys.executable, "-m", "sipedge"],
                             {**env, WORKER_VARIABLE: str(index), TOKEN_VARIABLE: self._token,
                              CALL_TOKEN_VARIABLE: self._call_token}, self._worker_ready)
                       for index in range(self.config.workers)]
        if self.part is Part.WORKERS:
            return workers
        if self.config.tls is not None:
            self._tls = hand_over(self.config.tls)
        files = self._write_front()
        self._front_config = files.config
        argv = [KAMAILIO, "-f", str(files.config), "-DD", "-E", LOG_ENGINE, "-Y", str(self._folder), "-w",
                str(self._folder), *_unprivileged()]
        kamailio = Child("kamailio", argv, front_env(os.environ, self.config), self._front_ready,
                         () if self._tls is None else self._tls.descriptors, reads_stderr=True, own_group=True,
                         parent_death=FRONT_PARENT_DEATH)
        self._front_child = kamailio
        return [*workers, kamailio]

    def _write_front(self, *, draining: bool = False) -> FrontFiles:
        """The front's files for this start, with its tokens; `draining`: for a front started during the drain."""
        return write_front(self.config, self._folder, worker_capacity(), self._token,
                           None if self._tls is None else self._tls.tls, mark=self._mark, call_token=self._call_token,
                           drain_token=self._drain_token, draining=draining)

    async def run(self) -> None:
        if self.part is not Part.WORKERS and not os.access(KAMAILIO, os.X_OK):
            shutil.rmtree(self._folder, ignore_errors=True)
            raise SystemExit(f"sipedge: {_front_for(self.config)} needs Kamailio at {KAMAILIO} (Debian's kamailio "
                             f"package), or {_without_front(self.config)}")
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # a hang-up too: a clean stop
            loop.add_signal_handler(signum, self._signalled, signum)
        # Before anything binds: a front an earlier edge left running would hold the SIP port.
        try:
            path = None if self.part is Part.WORKERS else record_file(self.config.sip_address, self.config.sip_port)
            record = None if path is None else await asyncio.to_thread(claim_record, path, KAMAILIO)
        except EdgeRunning as error:
            shutil.rmtree(self._folder, ignore_errors=True)
            raise SystemExit(f"sipedge: {error}") from None
        except OSError as error:
            shutil.rmtree(self._folder, ignore_errors=True)
            raise SystemExit(f"sipedge: the check for a Kamailio front left by an earlier edge: {error}") from None
        self._front_record = record
        self._front_watch = None if self.part is Part.WORKERS else FrontWatch(KAMAILIO)
        children = self._children()
        workers, front = self._split(children)
        try:
            await self._serve(children)
        finally:
            log.info("sipedge: stopping %s%d workers; their calls in flight are hung up",
                     "" if front is None else "Kamailio and ", len(workers))
            # The workers first, while Kamailio can still carry their BYEs to the trunk.
            await asyncio.gather(*(child.stop() for child in workers), return_exceptions=True)
            if front is not None:
                await front.stop()
            if self._relays:  # their readers reach their pipes' end first (bounded), so no last line comes late
                await asyncio.wait(set(self._relays), timeout=READERS_SECONDS)
            await asyncio.gather(*(asyncio.to_thread(relay.close)  # their last lines, each within its bound
                                   for relay in (self._front_log, self._front_output, self._worker_output)))
            if self._front_watch is not None:
                self._front_watch.forget()
            if record is not None:
                record.close()
            if self._front_watch is not None:
                self._front_watch.close()
            shutil.rmtree(self._folder, ignore_errors=True)
            if self._tls is not None:
                self._tls.close()
        if self.failed is not None:
            raise SystemExit(f"sipedge: {self.failed}")

    def _signalled(self, signum: int = signal.SIGTERM) -> None:
        """The first stop signal drains; a second (not a repeat of the first: drain.REPEAT_SECONDS) stops the workers
        still draining (SIGTERM: at once)."""
        if self._first_signal.repeated(signum):
            return
        if self._stopping.is_set():
            self._stop_now.set()
            for child in self._draining:
                _signal(child, signal.SIGTERM)
        self._stopping.set()

    async def _drain(self, workers: list[Child]) -> None:
        """Each worker up told to drain (DRAIN_SIGNAL: it refuses new calls, its calls in flight go on), then waited for
        within its drain and its stop, the front and the control API still up for the calls' requests. A worker whose
        calls have ended says so (DRAINED_LINE) and stays up, refusing new calls, until `run` stops it. The front's part
        run apart outlasts its workers instead (`_outlast_workers`), with `drain_seconds = 0` too."""
        seconds = self.config.drain_seconds
        if self._stop_now.is_set():
            return
        if self.part is Part.FRONT:  # with no drain too: the workers, stopped at the same moment, BYE through it
            await self._outlast_workers(seconds)
            return
        if seconds == 0:
            return
        self._draining, self.draining = workers, True
        # The front first: from now on it refuses new INVITEs itself, and none reaches a worker told to drain.
        front = await tell_front_draining(self.config, self._drain_token)
        for child in workers:
            _signal(child, DRAIN_SIGNAL)
        log.warning("sipedge: draining: each of the %d workers ends once its calls in flight end, within %d s; new "
                    "calls are refused 503 by %s (a second SIGTERM, SIGINT or SIGHUP hangs them up now)", len(workers),
                    seconds, "Kamailio" if front else "the workers")
        left = await drained(lambda: sum(_running(child) and not child.drained for child in workers),
                             seconds + STOP_SECONDS, self._stop_now)
        if left == 0:
            log.warning("sipedge: drained: every worker's calls have ended")
        else:
            log.warning("sipedge: %d workers still draining are stopped", left)

    async def _outlast_workers(self, seconds: int) -> None:
        """The front's drain, run apart from its workers: it refuses new INVITEs from now on and carries the calls in
        flight until no worker holds its SIP port (their own drain and stop), within theirs."""
        self.draining = True
        await tell_front_draining(self.config, self._drain_token)
        log.warning("sipedge: draining: Kamailio refuses new calls 503 and carries the calls in flight until the "
                    "workers have stopped, within %d s", seconds + 2 * STOP_SECONDS)
        left = await drained(lambda: len(bound_worker_ports(self.config)), seconds + 2 * STOP_SECONDS, self._stop_now)
        log.warning("sipedge: %s", "the workers have stopped" if left == 0 else f"{left} workers still up; stopping")

    def _split(self, children: list[Child]) -> tuple[list[Child], Child | None]:
        """`children` (as `_children` lists them) as the workers and Kamailio, none in the workers' part."""
        return (children, None) if self.part is Part.WORKERS else (children[:-1], children[-1])

    async def _serve(self, children: list[Child]) -> None:
        """Starts `children`, then watches them until the edge is stopped or one keeps failing."""
        stop = asyncio.create_task(self._stopping.wait())
        workers, front = self._split(children)
        try:
            starting = asyncio.create_task(_start_all(workers, front))
            await asyncio.wait([stop, starting], return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():  # stopped while starting
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
                return
            if (error := starting.exception()) is not None:
                self.failed = f"the edge did not start: {error}"
                return
            print("sipedge: ready", flush=True)
            tls = f", tls {self.config.tls.port}" if self.config.tls is not None else ""
            log.info("sipedge: Kamailio on udp %s:%d%s in front of %d workers%s", self.config.sip_address,
                     self.config.sip_port, tls, self.config.workers,
                     "" if self.part is Part.WHOLE else f" (this process runs the {self.part.value} alone)")
            control = self._control(workers) if workers else None
            if control is not None:
                await control.start()
            watchers = [asyncio.create_task(self._guarded(f"watching {child.name}", self._watch(child)))
                        for child in children]
            watchers.append(asyncio.create_task(self._guarded("the front's refusals' periods", self._end_periods())))
            try:
                await asyncio.wait([stop, *watchers], return_when=asyncio.FIRST_COMPLETED)
                if self._stopping.is_set() and self.failed is None:
                    await self._drain(workers)
            finally:
                for task in watchers:
                    task.cancel()
                if control is not None:
                    await control.close()
        finally:
            stop.cancel()

    async def _guarded(self, what: str, work: Awaitable[None]) -> None:
        """`work`, one of the edge's watchers: an error none foresaw is logged and stops the edge with a non-zero
        exit (`failed`), so that whatever runs it restarts it, rather than leaving it running unwatched."""
        try:
            await work
        except Exception as error:
            log.exception("sipedge: %s failed; the edge stops", what)
            self.failed = f"{what} failed: {error!r}"

    async def _end_periods(self) -> None:
        """The front's refusals' totals line each PERIOD_SECONDS, as a worker ends its own (sipedge/edge.py)."""
        while True:
            await asyncio.sleep(PERIOD_SECONDS)
            self.front_refusals.end_period()

    def _control(self, workers: list[Child]) -> ControlFront | None:
        """The edge's one control API, passing requests on to the workers' own (sipedge/control_front.py)."""
        if self.config.control_port is None or self.config.control_secret is None:
            return None
        return ControlFront(self.config.control_address, self.config.control_port, self.config.control_secret,
                            lambda: [worker.control_port for worker in workers], worker_calls=worker_capacity(),
                            trunks=self.config.trunks, front_refused=self.front_refusals.last_minute,
                            draining=lambda: self.draining)

    async def _watch(self, child: Child) -> None:
        """Starts `child` again each time it exits; returns once it has failed RESTART_LIMIT times running. The front
        is started again during the drain too, and told again that the edge drains (its flag lives in its own memory):
        it refuses the new calls and carries the calls in flight. A worker is not: see the back-off below."""
        front = child is self._front_child
        while True:
            assert child.process is not None
            started = time.monotonic()
            code = await child.exited(child.process)
            if child.own_group and self._front_watch is not None:  # its group killed: its id may pass to another
                self._front_watch.forget()
            child.control_port = None
            if self._stopping.is_set() and not front:
                return
            child.failures = 1 if time.monotonic() - started >= STEADY_SECONDS else child.failures + 1
            if child.failures > RESTART_LIMIT:
                self.failed = f"{child.name} exited {child.failures} times in a row (last: {code}); the edge stops"
                return
            delay = min(RESTART_MAX_SECONDS, RESTART_FIRST_SECONDS * 2 ** (child.failures - 1))
            log.error("sipedge: %s exited (%s); starting it again in %.1f s", child.name, code, delay)
            # The back-off ends early at the edge's stop, and no worker starts then: one started during the drain
            # was never told to drain (it would take new calls, and its supervisor would wait the drain's bound).
            if front:
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                if self._stopping.is_set():
                    return
            before = child.process
            if front and self._stopping.is_set():  # refusing new calls from its first request, whatever the word does
                await asyncio.to_thread(self._write_front, draining=True)
            try:
                await child.start()
                if front and self._stopping.is_set():  # and told, as the drain told the one before
                    await tell_front_draining(self.config, self._drain_token)
            except (OSError, TimeoutError) as exc:
                # A start that runs but never became ready (Kamailio answering no OPTIONS, a worker with no ready
                # line) is ended, its whole group: its exit, just above, is then counted as a failed start.
                log.error("sipedge: %s did not start again (%s); ending that start", child.name, exc)
                if child.process is not None and child.process is not before:
                    child.kill(child.process)

    async def _worker_ready(self, child: Child) -> None:
        """Its "sipedge: ready" line; what else it prints is passed on."""
        assert child.process is not None and child.process.stdout is not None
        stdout = child.process.stdout

        async def ready() -> None:
            output = lines(stdout)  # one reader to the end: its chunk may hold the lines after "ready"
            async for line in output:
                if line.startswith(CONTROL_LINE.encode()):  # its control API's port: the supervisor's to know
                    child.control_port = int(line.removeprefix(CONTROL_LINE.encode()))
                    continue
                if line.strip() == b"sipedge: ready":
                    log.info("sipedge: %s ready", child.name)
                    child.drained = False
                    self._keep(asyncio.get_running_loop().create_task(_relay(output, self._worker_output, child)))
                    return
                self._worker_output.put(line)
            raise OSError(f"{child.name} exited before it was ready")

        try:
            await asyncio.wait_for(ready(), READY_SECONDS)
        except TimeoutError:  # its own message is empty: say whose start it was, and how long it had
            raise OSError(f"{child.name} was not ready within {READY_SECONDS:g} s (no \"sipedge: ready\" line)") \
                from None

    async def _front_ready(self, child: Child) -> None:
        """Kamailio answers SIP: an OPTIONS to its port is answered."""
        assert child.process is not None and child.process.stdout is not None and child.process.stderr is not None
        if self._front_config is not None:  # before it binds
            record = FrontRecord.of(child.process.pid, self._front_config)
            if self._front_record is not None:
                self._front_record.write(record)
            if self._front_watch is not None:
                self._front_watch.tell(record)
        loop = asyncio.get_running_loop()
        own = in_group(child.process.pid)  # its own group: its processes' entries are told by their ids
        self._keep(loop.create_task(_relay_front(cut_lines(child.process.stdout), self._front_output, own)))
        reader = loop.create_task(read_front_log(child.process.stderr, self.front_refusals, self._mark,
                                                 self._front_log, own))
        self._keep(reader)
        process = child.process  # this start's: a later one has a reader of its own
        reader.add_done_callback(lambda _: self._keep(loop.create_task(self._log_read_ended(child, process))))
        deadline = time.monotonic() + READY_SECONDS
        while not await asyncio.to_thread(_answers_options, self.config.sip_address, self.config.sip_port):
            if child.process.returncode is not None or time.monotonic() > deadline:
                raise OSError(f"Kamailio did not answer on udp {self.config.sip_address}:{self.config.sip_port}")

    async def _log_read_ended(self, child: Child, process: asyncio.subprocess.Process) -> None:
        """Kamailio's log no longer read while it runs would leave it blocked on its next log write, answering no
        SIP: it is stopped, and `_watch` starts it again. Its log ends when it exits, so a Kamailio still
        running STOP_SECONDS later is one whose reader failed."""
        if self._stopping.is_set():
            return
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), STOP_SECONDS)
        except TimeoutError:
            log.error("sipedge: Kamailio's log is no longer read while it runs; stopping it to start it again")
            child.kill(process)


def _front_for(config: EdgeConfig) -> str:
    """What asks for the front: several workers, else a trunk's inbound digest credential."""
    if config.workers > 1:
        return f"workers = {config.workers}"
    digest = next(t.name for t in config.trunks if t.inbound_digest is not None)
    return f"trunk {digest!r}'s inbound digest credential (docs/sip.md#inbound-digest)"


def _without_front(config: EdgeConfig) -> str:
    digest = any(t.inbound_digest is not None for t in config.trunks)
    return ("set workers = 1 and leave inbound_digest_username out" if digest and config.workers > 1
            else "leave inbound_digest_username out" if digest else "set workers = 1")


def front_env(env: Mapping[str, str], config: EdgeConfig) -> dict[str, str]:
    """Kamailio's environment: PATH, and the inbound digest passwords it checks trunks' responses with
    (docs/sip.md#inbound-digest) and nothing else. It parses every stranger's packet and runs as a shared
    user, whose other processes may read /proc/PID/environ: no other secret of the edge belongs there."""
    passwords = {t.inbound_digest.password_env: env[t.inbound_digest.password_env]
                 for t in config.trunks if t.inbound_digest is not None}
    return {"PATH": env.get("PATH", "/usr/bin:/bin"), **passwords}


def worker_env(env: Mapping[str, str], config: EdgeConfig) -> dict[str, str]:
    """A worker's environment: the edge's, less the inbound digest passwords, which only Kamailio checks. A worker
    parses every admitted call's SDP and RTP: it holds no secret it has no use for."""
    passwords = {t.inbound_digest.password_env for t in config.trunks if t.inbound_digest is not None}
    return {name: value for name, value in env.items() if name not in passwords}


async def _start_all(workers: list[Child], front: Child | None) -> None:
    """The workers, then Kamailio: its first probe of a worker not yet up would mark that worker inactive.
    Raises OSError naming every worker that did not start, each with its own reason."""
    started = await asyncio.gather(*(child.start() for child in workers), return_exceptions=True)
    failed = [_why(child, error) for child, error in zip(workers, started, strict=True)
              if isinstance(error, BaseException)]
    if failed:
        raise OSError("; ".join(failed))
    if front is not None:
        await front.start()


def _why(child: Child, error: BaseException) -> str:
    """Why `child` did not start, naming it (once)."""
    said = str(error) or type(error).__name__
    return said if child.name in said else f"{child.name}: {said}"


def _unprivileged() -> list[str]:
    """Run as root, Kamailio reads its files, binds, then drops to nobody: it needs nothing more."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(UNPRIVILEGED_USER)
        grp.getgrnam(UNPRIVILEGED_GROUP)
    except KeyError:
        return []
    return ["-u", UNPRIVILEGED_USER, "-g", UNPRIVILEGED_GROUP]


async def _relay(output: AsyncIterator[bytes], relay: LogRelay, worker: Child) -> None:
    """A worker's standard output, passed on off the event loop (a stalled output of ours never holds it), but its
    DRAINED_LINE, which is the supervisor's."""
    async for line in output:
        if line.strip() == DRAINED_LINE.encode():
            worker.drained = True
            continue
        relay.put(line)


async def _relay_front(output: AsyncIterator[tuple[bytes, int]], relay: LogRelay,
                       own: Callable[[int], bool]) -> None:
    """Kamailio's standard output (its start's banner), as its log is passed on."""
    async for line, over in output:
        relay.put(relayed(read_line(line, over), own))


def _answers_options(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        probe.settimeout(PROBE_SECONDS)
        local = probe.getsockname()[1]
        probe.sendto((f"OPTIONS sip:{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {host}:{local};branch=z9hG4bK-ready\r\n"
                      f"Max-Forwards: 70\r\nFrom: <sip:probe@{host}>;tag=ready\r\nTo: <sip:{host}:{port}>\r\n"
                      f"Call-ID: ready-{local}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(), (host, port))
        try:
            return probe.recv(4096).startswith(b"SIP/2.0 200")
        except OSError:
            return False
