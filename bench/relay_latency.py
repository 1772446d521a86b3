"""End of speech → first bot audio through a TURN relay vs direct, in one run.

    uv run python -m bench.relay_latency --runs 5        # needs root, iproute2 and coturn

Three network namespaces (tests/support/netns.py) with a client-bot link added: coturn in the
hub, a real bot and the aiortc user each in their own namespace. Each round runs one session
through the relay (both peers relay-only, credentials from dispatcher/media/turn.py, as a cloud
session) and one direct (host candidates over the client-bot link, no ICE servers), in
alternating order, each with a fresh bot. Every session's nominated candidate pair is checked,
so a "relay" number is never a direct session in disguise. Prints medians [min–max] and the
load average; asserts nothing. The namespaces are virtual links on one host: the difference is
the relay's own processing and the extra hop, not internet distance (docs/webrtc.md).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from dispatcher.media.turn import TurnCredentials, TurnSettings
from tests.support.coturn import coturn_unavailable_reason, run_coturn
from tests.support.netns import TURN_ADDRESS, relay_topology, unavailable_reason
from tests.support.netns_session import run_session

NO_SERVERS: dict[str, Any] = {"iceServers": []}


def summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"{statistics.median(ms):.0f} ms [{ms[0]:.0f}–{ms[-1]:.0f}]" if ms else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="sessions per path (default 5)")
    args = parser.parse_args()
    reason = unavailable_reason() or coturn_unavailable_reason()
    if reason:
        print(f"cannot run: {reason}")
        return 2

    secret = secrets.token_urlsafe(24)
    latencies: dict[str, list[float]] = {"relay": [], "direct": []}
    greetings: dict[str, list[float]] = {"relay": [], "direct": []}
    pairs: dict[str, set[tuple[str, str]]] = {"relay": set(), "direct": set()}
    # Bytes the client sent and received at its DTLS transport, and its connected seconds, summed.
    traffic: dict[str, list[float]] = {"relay": [0.0, 0.0, 0.0], "direct": [0.0, 0.0, 0.0]}
    failures: list[str] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="i10-bench-") as tmp, relay_topology(direct_link=True) as topology:
        workdir = Path(tmp)
        with run_coturn(topology.hub, TURN_ADDRESS, secret, workdir / "coturn") as turn:
            settings = TurnSettings.from_env({"TURN_URLS": turn.url_udp, "TURN_SHARED_SECRET": secret}, cloud=True)
            assert settings is not None
            credentials = TurnCredentials(settings)
            for round_number in range(args.runs):
                order = ("relay", "direct") if round_number % 2 == 0 else ("direct", "relay")
                for path in order:
                    session_id = secrets.token_hex(12)
                    relay = path == "relay"
                    try:
                        session = run_session(
                            topology,
                            workdir / f"{round_number}-{path}",
                            session_id=session_id,
                            bot_ice=credentials.ice_config(session_id, role="bot") if relay else None,
                            client_ice=credentials.ice_config(session_id) if relay else NO_SERVERS,
                        )
                    except AssertionError as exc:  # a session that never finished: counted, not fatal
                        failures.append(f"{path} round {round_number}: {str(exc)[:300]}")
                        continue
                    result = session.result
                    for index, key in enumerate(("bytes_sent", "bytes_received", "connected_seconds")):
                        traffic[path][index] += result[key]
                    pairs[path].add((result["local_type"], result["remote_type"]))
                    if result["reply_latency"] is None:
                        failures.append(f"{path} round {round_number}: no reply ({result['summary']})")
                        continue
                    latencies[path].append(result["reply_latency"])
                    if result["connect_to_first_audio"] is not None:
                        greetings[path].append(result["connect_to_first_audio"])
                    reply_ms = result["reply_latency"] * 1000
                    greeting_ms = (result["connect_to_first_audio"] or 0) * 1000
                    print(
                        f"round {round_number} {path:6}: end of speech → bot audio {reply_ms:.0f} ms, "
                        f"connect → greeting {greeting_ms:.0f} ms, pair {result['local_type']}↔{result['remote_type']}",
                        flush=True,
                    )
                    time.sleep(0.5)  # let the bot's exit settle before the next start-up competes
    load_after = os.getloadavg()[0]
    print()
    print(f"load average {load_before:.2f} → {load_after:.2f}; {args.runs} sessions per path")
    print("| path | end of speech → first bot audio | connect → first bot audio | candidate pair | client up / down |")
    print("|---|---|---|---|---|")
    for path in ("direct", "relay"):
        kinds = ", ".join(f"{a}↔{b}" for a, b in sorted(pairs[path]))
        sent, received, seconds = traffic[path]
        rate = f"{sent * 8 / 1000 / seconds:.0f} / {received * 8 / 1000 / seconds:.0f} kbit/s" if seconds else "n/a"
        print(f"| {path} | {summary(latencies[path])} | {summary(greetings[path])} | {kinds} | {rate} |")
    if latencies["relay"] and latencies["direct"]:
        cost = statistics.median(latencies["relay"]) - statistics.median(latencies["direct"])
        print(f"relay cost (difference of medians): {cost * 1000:+.0f} ms")
    for failure in failures:
        print("FAILED:", failure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
