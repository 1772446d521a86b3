"""How often a bot spawned from a process that exports spans over gRPC dies before it starts.

    uv run --all-groups python -m bench.spawn_beside_grpc --spawns 400

Two threads export spans as fast as they can to an OTLP/gRPC receiver in this process, as a
dispatcher with `OTEL_EXPORTER_OTLP_PROTOCOL=grpc` does under load, while this process spawns
`/bin/true` over and over, alternating two ways:

- `preexec_fn`: the parent-death signal set by Python code in the forked child (Python's
  subprocess then forks, runs the at-fork handlers, gRPC's among them, and calls the function);
- `launcher`: the way every local bot starts (dispatcher/machines/local/spawn.py): the child only
  `exec`s isolated_exec.py, which sets the signal and the Landlock domain in its own process.

Prints each way's spawns that did not exit 0 (gRPC's fork handlers abort or crash the child with
other threads inside gRPC). Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import threading

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from dispatcher.machines.local.isolation import BotIsolation
from dispatcher.machines.local.parent_death import die_with_parent
from dispatcher.machines.local.spawn import BotRefused, spawn_bot
from tests.support.otlp_receiver import otlp_grpc_receiver

PROGRAM = "/bin/true"


async def launched(isolation: BotIsolation) -> int:
    """PROGRAM started as every local bot is; its exit code (126: the launcher refused)."""
    kept, _peer = socket.socketpair()  # stands for the launch socket every bot keeps
    with kept, _peer:
        try:
            process = await spawn_bot(isolation, [PROGRAM], {"PATH": os.defpath}, keep_fd=kept.fileno(),
                                      spawned=lambda _: None)
        except BotRefused:
            return 126
        return await process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spawns", type=int, default=400, help="spawns of each way")
    args = parser.parse_args()
    isolation = BotIsolation.for_this_host()
    parent = os.getpid()
    failed = {"preexec_fn": 0, "launcher": 0}
    with otlp_grpc_receiver() as (endpoint, _received):
        provider = TracerProvider()
        exporter = OTLPSpanExporter(endpoint=endpoint.removeprefix("http://"), insecure=True)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1))
        tracer = provider.get_tracer("bench.spawn_beside_grpc")
        done = threading.Event()

        def export() -> None:
            while not done.is_set():
                with tracer.start_as_current_span("span"):
                    pass

        exporters = [threading.Thread(target=export, daemon=True) for _ in range(2)]
        for thread in exporters:
            thread.start()
        try:
            for _ in range(args.spawns):
                spawned = subprocess.run([PROGRAM], preexec_fn=lambda: die_with_parent(parent),  # noqa: PLW1509
                                         stderr=subprocess.DEVNULL, check=False)
                failed["preexec_fn"] += spawned.returncode != 0
                failed["launcher"] += asyncio.run(launched(isolation)) != 0
        finally:
            done.set()
            provider.shutdown()
    print(f"load {os.getloadavg()[0]:.2f}, {args.spawns} spawns each, Landlock ABI {isolation.abi}")
    for way, count in failed.items():
        print(f"{way:<11}: {count} of {args.spawns} did not exit 0")


if __name__ == "__main__":
    main()
