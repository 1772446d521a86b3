"""A hostile review of the TLS connection cap the cloud edge's host loads (sip_edge_host.tls_firewall): docs/sip.md
#tls-and-srtp says a churn of bare connects aborts PJSIP's TLS listener (its I/O queue's 64 sockets) and that the
host's cap is what makes `tls_port_firewalled = true` true. Here PJSIP's listener, made by the edge's own
`tls_transport` from the wheel the edge runs, sits behind the stack's exact ruleset in a network namespace of its
own, and one source of a trunk's range connects and closes in a row."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stacks.config.sip_edge import stand_in_pair
from stacks.shared import sip_edge_host

PORT = 5061

# PJSIP's TLS listener as sipedge/stack.py makes it (one PJSIP process, no front), on loopback.
_LISTENER = textwrap.dedent("""
    import sys
    import pjsua2 as pj
    from sipedge.config import Tls
    from sipedge.secure_ciphers import forward_secret
    from sipedge.secure_sip import tls_transport
    certificate, key, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    endpoint = pj.Endpoint(); endpoint.libCreate()
    config = pj.EpConfig(); config.uaConfig.threadCnt = 0; config.uaConfig.mainThreadOnly = False
    config.logConfig.level = config.logConfig.consoleLevel = 1
    endpoint.libInit(config)
    endpoint.audDevManager().setNullDev()
    udp = pj.TransportConfig(); udp.boundAddress = "127.0.0.1"; udp.port = 5060
    endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, udp)
    tls = Tls(port, certificate, key, None, False)
    ciphers = forward_secret(endpoint.utilSslGetAvailableCiphers())
    endpoint.transportCreate(pj.PJSIP_TRANSPORT_TLS, tls_transport(tls, "127.0.0.1", ciphers, "127.0.0.1"))
    endpoint.libStart()
    print("ready", flush=True)
    while True:
        endpoint.libHandleEvents(10)
""")

# In the namespace: the stack's ruleset, the listener, then one source's connects, each closed at once (every
# other one with a reset), until `attempts` connects completed or 120 s passed: without the rate limit the
# listener aborted after 386-770 connects (757 in under 90 s at a load of 4 on 2 cores).
_CHURN = textwrap.dedent("""
    import socket, struct, subprocess, sys, time
    listener, certificate, key, rules, port, attempts = sys.argv[1:7]
    port, attempts = int(port), int(attempts)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["nft", "-f", rules], check=True)
    edge = subprocess.Popen([sys.executable, listener, certificate, key, str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    while (line := edge.stdout.readline()) and line.strip() != "ready":
        pass
    assert edge.poll() is None, "the listener did not start"
    ends, connected = time.monotonic() + 120, 0
    for n in range(attempts * 2):
        if edge.poll() is not None or time.monotonic() > ends or connected >= attempts:
            break
        s = socket.socket(); s.settimeout(2); s.bind(("127.0.0.2", 0))
        try:
            s.connect(("127.0.0.1", port))
            connected += 1
            if n % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        s.close()
    time.sleep(2)
    alive = edge.poll() is None
    edge.kill()
    said = "" if alive else edge.stdout.read()[-300:].replace("\\n", " ")
    print(f"alive={alive} connects={connected} tries={n + 1} {said}")
""")


# The host's rate limit drops a churning source's extra SYNs, so each connect past it waits for the client's
# retransmit (~1 s) and the churn runs its whole 120 s: with the listener's start on a loaded machine, near
# pytest's default timeout.
@pytest.mark.timeout(300)
@pytest.mark.skipif(shutil.which("unshare") is None or shutil.which("nft") is None or shutil.which("ip") is None,
                    reason="needs unshare, nft and ip")
def test_one_trunk_source_churning_connects_behind_the_hosts_cap_leaves_the_edge_running(tmp_path: Path) -> None:
    pytest.importorskip("pjsua2")
    if subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=30, check=False).returncode != 0:
        pytest.skip("cannot make a network namespace here (needs CAP_SYS_ADMIN and CAP_NET_ADMIN)")
    certificate, key = stand_in_pair()
    (tmp_path / "edge.crt").write_text(certificate)
    (tmp_path / "edge.key").write_text(key)
    (tmp_path / "edge.key").chmod(0o600)
    (tmp_path / "tls.nft").write_text(sip_edge_host.tls_firewall(PORT))
    (tmp_path / "listener.py").write_text(_LISTENER)
    (tmp_path / "churn.py").write_text(_CHURN)
    ran = subprocess.run(["unshare", "-n", sys.executable, str(tmp_path / "churn.py"), str(tmp_path / "listener.py"),
                          str(tmp_path / "edge.crt"), str(tmp_path / "edge.key"), str(tmp_path / "tls.nft"),
                          str(PORT), "2000"], capture_output=True, text=True, timeout=300, check=False,
                         env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": ":".join(sys.path)})
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.strip().startswith("alive=True"), ran.stdout[-2000:]
