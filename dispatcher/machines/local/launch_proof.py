"""A local bot proves it is the process this dispatcher launched: a nonce through its launch socket.

A local bot's channel credential sits in its environment, which another process of the same user
may read. So each bot is launched holding one end of a `socketpair()` of its own (`BOT_IDENTITY_FD`
names the descriptor); for every dial it writes a fresh nonce there and sends the same nonce as its
hello's identity, admitted only when it came through the socket of the machine launched for that
bot. A socket cannot be opened through `/proc/<pid>/fd`, and the dispatcher's end has
`SO_PASSCRED`, so a nonce is kept only when the kernel attests its writer is the launched process or
a descendant. Per bot, what is read and kept is bounded (`DRAIN_READS` × `DRAIN_BYTES` per check,
the newest `KEPT_NONCES`). The threat and what remains: docs/security.md ("Local bots").
"""

from __future__ import annotations

import hashlib
import socket
import struct
from collections import deque

from botchannel.contract import IDENTITY_FD_VARIABLE, IDENTITY_VARIABLE, Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.channel.identity import ProofSeen

NONCE_CHARS = 43  # secrets.token_urlsafe(32): 256 random bits, base64url
DRAIN_BYTES = 4096  # per read: a bot writes 44 bytes per dial
DRAIN_READS = 16  # per check: a bot writing junk without end costs a check this much, no more
KEPT_NONCES = 8
PROOF_SECONDS = 600.0  # the one-use record's life (a nonce is also forgotten here once spent)
ANCESTRY_DEPTH = 8  # how far up from a writer its launched process may be (a wrapper or two)
_UCRED = struct.Struct("iII")  # struct ucred: pid, uid, gid


class LaunchSocket:
    """One launched bot's pair: the dispatcher's end (kept, non-blocking) and the child's (handed over)."""

    def __init__(self) -> None:
        self._ours, self.child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._ours.setblocking(False)
        self._ours.shutdown(socket.SHUT_WR)  # nothing flows to the bot: it cannot read a nonce back
        # Before the child exists: every write then carries its sender's pid, and a stream read
        # never joins two senders' bytes (unix(7), SO_PASSCRED / SCM_CREDENTIALS).
        self._ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._partial = b""
        self._nonces: deque[str] = deque(maxlen=KEPT_NONCES)
        self._pid: int | None = None  # none is accepted before the process is known

    def launched(self, pid: int) -> None:
        """The process started with this socket: only it (or its descendants) may write a nonce."""
        self._pid = pid

    def environment(self) -> dict[str, str]:
        """What tells the bot to prove itself, and through which descriptor (not a secret)."""
        return {IDENTITY_VARIABLE: "local", IDENTITY_FD_VARIABLE: str(self.child.fileno())}

    def handed_over(self) -> None:
        """The child holds its end now (or never will): the dispatcher's copy of it goes."""
        self.child.close()

    def spend(self, nonce: str) -> bool:
        """Whether `nonce` came through this socket and was not spent before."""
        self._drain()
        if nonce not in self._nonces:
            return False
        self._nonces.remove(nonce)
        return True

    def _drain(self) -> None:
        for _ in range(DRAIN_READS):
            try:
                data, ancillary, _, _ = self._ours.recvmsg(DRAIN_BYTES, socket.CMSG_SPACE(_UCRED.size))
            except OSError:  # BlockingIOError: all read; any other: the bot's end is gone
                return
            if not data:
                return  # the bot closed its end
            if not self._from_launched(ancillary):
                continue  # a borrowed end: dropped, and never joined to the bot's own bytes
            *lines, partial = (self._partial + data).split(b"\n")
            self._partial = partial[-(NONCE_CHARS + 1):]  # junk without a newline keeps no more than this
            for line in lines:
                text = line.decode("ascii", errors="replace")
                if len(text) == NONCE_CHARS:
                    self._nonces.append(text)

    def _from_launched(self, ancillary: list[tuple[int, int, bytes]]) -> bool:
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(payload) >= _UCRED.size:
                sender = _UCRED.unpack_from(payload)[0]
                return self._pid is not None and _descends_from(sender, self._pid)
        return False  # no attested sender: never a nonce

    def close(self) -> None:
        self._ours.close()
        self.child.close()


def _descends_from(pid: int, ancestor: int) -> bool:
    """Whether `pid` is `ancestor` or below it, a few parents up (/proc/<pid>/stat, proc(5))."""
    for _ in range(ANCESTRY_DEPTH):
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                # "pid (comm) state ppid …": comm may hold spaces and parentheses, so after the last ")".
                pid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


class LaunchedProcesses:
    """The `MachineIdentity` of local bots: a hello is admitted only with a nonce that came through
    the launch socket of the process launched for its credential's bot id or session."""

    def __init__(self) -> None:
        self._sockets: dict[tuple[str, str], LaunchSocket] = {}
        # Several replicas on one store: a bot another replica launched may be sent here (a
        # forwarder in front of the channel URL), and its launch socket is there. Its hello is then
        # taken on its credential alone (docs/security.md, Known limits); one process refuses it.
        self.launched_elsewhere_unchecked = False

    def launching(self, kind: str, subject: str) -> LaunchSocket:
        """A launch socket for the process about to start for a `kind` credential naming `subject`."""
        self.forget(kind, subject)
        pair = self._sockets[(kind, subject)] = LaunchSocket()
        return pair

    def forget(self, kind: str, subject: str) -> None:
        """The process exited (or never started): no hello speaks for it any more."""
        pair = self._sockets.pop((kind, subject), None)
        if pair is not None:
            pair.close()

    async def refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        pair = self._sockets.get((grant.kind, grant.subject))
        if pair is None:
            if self.launched_elsewhere_unchecked:
                return None
            return "no running bot was launched here for this credential"
        if hello.identity is None:
            return "no launch proof (a local bot writes one through the socket it was launched with)"
        if not pair.spend(hello.identity):
            return "launch proof did not come through the launched process's socket"
        return None

    def proof_seen(self, hello: Hello) -> ProofSeen | None:
        if hello.identity is None:
            return None
        return ProofSeen("local:" + hashlib.sha256(hello.identity.encode()).hexdigest(), PROOF_SECONDS)

    def close(self) -> None:
        for pair in self._sockets.values():
            pair.close()
        self._sockets.clear()
