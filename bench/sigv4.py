"""CPU per SigV4 signature: botocore's `SigV4Auth` against dispatcher/machines/ecs/sigv4.py, same request.

The request is a RunTask as the ECS provider sends it (a ~1.5 kB JSON body, temporary
credentials, as a Fargate task role has). Prints µs of CPU per signature, median of `--rounds`.

    uv run --all-groups python -m bench.sigv4 [--calls 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from dispatcher.machines.ecs.sigv4 import AwsKeys, SigV4Signer

HOST = "ecs.eu-west-1.amazonaws.com"
HEADERS = {"content-type": "application/x-amz-json-1.1", "x-amz-target": "AmazonEC2ContainerServiceV20141113.RunTask"}
BODY = json.dumps({
    "cluster": "voicefleet", "taskDefinition": "bot", "count": 1, "clientToken": "s" * 32, "startedBy": "s" * 32,
    "overrides": {"containerOverrides": [{"name": "bot", "environment": [
        {"name": f"VAR_{i}", "value": "v" * 60} for i in range(12)]}]},
    "tags": [{"key": f"voicefleet:{i}", "value": "x" * 40} for i in range(5)],
}).encode()  # fmt: skip
KEYS = AwsKeys("ASIAEXAMPLEEXAMPLE", "secret/" * 6, "token" * 80)


def botocore_sign() -> None:
    request = AWSRequest(method="POST", url=f"https://{HOST}/", data=BODY, headers=dict(HEADERS))
    SigV4Auth(Credentials(*KEYS), "ecs", "eu-west-1").add_auth(request)


_signer = SigV4Signer("ecs", "eu-west-1")


def ours_sign() -> None:
    _signer.sign(HOST, HEADERS, BODY, KEYS)


def per_call_us(sign: Callable[[], None], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        sign()
    return (time.process_time() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"botocore SigV4Auth": [], "dispatcher.machines.ecs.sigv4": []}
    for _ in range(args.rounds):  # alternating, so a busy moment hits both
        results["botocore SigV4Auth"].append(per_call_us(botocore_sign, args.calls))
        results["dispatcher.machines.ecs.sigv4"].append(per_call_us(ours_sign, args.calls))
    for name, values in results.items():
        print(f"{name:22} {statistics.median(values):7.1f} µs CPU per signature [{min(values):.1f}–{max(values):.1f}]")


if __name__ == "__main__":
    main()
