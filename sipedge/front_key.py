"""The TLS files as the front's Kamailio reads them: Kamailio loads them only after it has dropped to
nobody, a user other processes share, which may not read the edge's files (the key is 0600, and a
folder on the way may be private). So the edge reads each one itself into an anonymous memory file,
handed to Kamailio as an open descriptor it opens by /proc/self/fd/N. No copy of the key is written
anywhere; only Kamailio's own process can open it (another nobody process cannot read a process's
/proc entries once it has changed user, and the front writes no core dump)."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, replace

from sipedge.config import Tls

# Kamailio closes the descriptors it inherits below some number as it starts: these sit well above.
LOWEST_DESCRIPTOR = 100


@dataclass(frozen=True)
class HandedFiles:
    """`tls` with each file's path replaced by the one Kamailio opens it by, and the descriptors to hand it."""

    tls: Tls
    descriptors: tuple[int, ...]

    def close(self) -> None:
        for descriptor in self.descriptors:
            os.close(descriptor)


def hand_over(tls: Tls) -> HandedFiles:
    """The certificate, key and CA list read now, as the edge's user, each into a memory file."""
    descriptors: list[int] = []
    try:
        certificate = _in_memory(tls.certificate_file, descriptors)
        private_key = _in_memory(tls.private_key_file, descriptors)
        ca_file = _in_memory(tls.ca_file, descriptors) if tls.ca_file else None
    except OSError:
        for descriptor in descriptors:
            os.close(descriptor)
        raise
    return HandedFiles(replace(tls, certificate_file=certificate, private_key_file=private_key, ca_file=ca_file),
                       tuple(descriptors))


def _in_memory(path: str, descriptors: list[int]) -> str:
    """`path`'s bytes in a memory file, close-on-exec until a child is started with it in pass_fds."""
    with open(path, "rb") as source:
        data = source.read()
    memory = os.memfd_create("sipedge-tls", os.MFD_CLOEXEC)
    try:
        os.write(memory, data)
        descriptor = fcntl.fcntl(memory, fcntl.F_DUPFD_CLOEXEC, LOWEST_DESCRIPTOR)
    finally:
        os.close(memory)
    descriptors.append(descriptor)
    return f"/proc/self/fd/{descriptor}"
