"""How many calls at once the PyPI wheel `pjsua2-pybind11` (0.1a3) lets PJSUA hold, measured: a
PJSUA2 endpoint built with that wheel answers every INVITE 200 with `maxCalls` set to --max-calls,
and SIPp's own `uac` scenario places --calls calls together (`-l`), each held 5 s. It prints PJSIP's
version, the call slots PJSUA made, and how many SIPp calls succeeded.

The wheel must not go into the project's environment (it installs a module named `pjsua2`, as the
edge's `pjsua2-python` does): run it from a virtual environment of its own,

    python3 -m venv /tmp/pbvenv && /tmp/pbvenv/bin/pip install pjsua2-pybind11==0.1a3
    /tmp/pbvenv/bin/python bench/sip_pybind11_slots.py --calls 8 --max-calls 64
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import threading

import pjsua2 as pj  # the pybind11 wheel's: attributes where SWIG's bindings have methods


class AnsweringAccount(pj.Account):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[pj.Call] = []
        self.answered = 0

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # noqa: N802  (PJSUA2's name)
        call = pj.Call(self, prm.callId)
        self.calls.append(call)
        op = pj.CallOpParam()
        op.statusCode = pj.StatusCode.OK  # an enum here; an int in SWIG's bindings
        call.answer(op)
        self.answered += 1


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--max-calls", type=int, default=64)
    args = parser.parse_args()
    endpoint = pj.Endpoint()
    endpoint.libCreate()
    config = pj.EpConfig()
    config.uaConfig.maxCalls = args.max_calls
    config.uaConfig.threadCnt = 1  # this wheel has no libHandleEvents: PJSIP's own thread polls
    config.uaConfig.mainThreadOnly = False
    config.logConfig.level = config.logConfig.consoleLevel = 1
    endpoint.libInit(config)
    endpoint.audDevManager.setNullDev()
    port = free_udp_port()
    transport = pj.TransportConfig()
    transport.boundAddress, transport.port = "127.0.0.1", port
    endpoint.transportCreate(pj.TransportType.UDP, transport)
    endpoint.libStart()
    account_config = pj.AccountConfig()
    account_config.idUri = f"sip:edge@127.0.0.1:{port}"
    account = AnsweringAccount()
    account.create(account_config, True)

    done = threading.Event()
    result: dict[str, str] = {}

    def call() -> None:
        sipp = subprocess.run(["sipp", "-sn", "uac", "-d", "5000", "-m", str(args.calls), "-l", str(args.calls),
                               "-r", str(args.calls), "-nostdin", "-timeout", "40", "-timeout_error",
                               "-i", "127.0.0.1", f"127.0.0.1:{port}"], capture_output=True, text=True, check=False)
        result["output"] = sipp.stdout
        done.set()

    threading.Thread(target=call, daemon=True).start()
    done.wait()
    succeeded = next((line.split("|")[-1].strip() for line in result["output"].splitlines()
                      if line.startswith("  Successful call")), "?")
    failed = next((line.split("|")[-1].strip() for line in result["output"].splitlines()
                   if line.startswith("  Failed call")), "?")
    print(f"PJSIP {endpoint.version.full}; maxCalls asked {args.max_calls}")
    print(f"answered {account.answered} of {args.calls} INVITEs; SIPp: {succeeded} succeeded, {failed} failed")
    endpoint.hangupAllCalls()
    endpoint.libDestroy()


if __name__ == "__main__":
    main()
