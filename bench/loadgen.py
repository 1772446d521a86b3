"""Load generator for the dispatcher benchmarks, run as a process of its own.

`concurrency` workers, each on one keep-alive connection (HTTP/1.1 by hand: a client library
would cost more CPU per request than the server under test), share `requests` POSTs. Prints one
JSON line: per-request latencies (s), status counts, wall time.

    python -m bench.loadgen --url http://127.0.0.1:8080/start --requests 600 --concurrency 200

Starts only, no session called: voice sessions, called and measured, are `voicefleet loadtest`'s
(docs/cli.md#bench-loadgenpy-stays says why this stays).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from urllib.parse import urlsplit


async def run(
    urls: list[str], requests: int, concurrency: int, body: bytes, headers: list[str], key_prefix: str | None = None
) -> dict[str, object]:
    """Worker n talks to urls[n % len(urls)]; with `key_prefix`, request i carries
    `Idempotency-Key: <key_prefix>-<i>` (every start a new keyed session)."""
    counter = iter(range(requests))
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def worker(url: str) -> None:
        target = urlsplit(url)
        host, port = target.hostname or "127.0.0.1", target.port or 80
        path = target.path + (f"?{target.query}" if target.query else "")
        extra = "".join(f"{h}\r\n" for h in headers)
        head = (f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n{extra}"
                f"content-length: {len(body)}\r\n").encode()
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in counter:
                began = time.perf_counter()
                key = f"idempotency-key: {key_prefix}-{i}\r\n".encode() if key_prefix else b""
                writer.write(head + key + b"\r\n" + body)
                response_head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in response_head.split(b"\r\n")[1:]:
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - began)
                statuses[int(response_head.split(b" ", 2)[1])] += 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker(urls[n % len(urls)]) for n in range(concurrency)))
    return {"latencies": latencies, "statuses": dict(statuses), "wall": time.perf_counter() - began}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, action="append", help="repeatable: workers spread over them")
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--body", default="{}")
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--idempotency-prefix", help="a unique Idempotency-Key per request, with this prefix")
    args = parser.parse_args()
    result = asyncio.run(run(args.url, args.requests, args.concurrency, args.body.encode(), args.header,
                             args.idempotency_prefix))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
