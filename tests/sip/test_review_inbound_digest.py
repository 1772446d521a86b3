"""Hostile review of the inbound digest credential (docs/sip.md#inbound-digest): what a toll-fraud scanner or a
local user could still do. Each test states the secure behaviour, which the edge now has; the reasoning, the
severity and the fix are in each test's docstring.

Kamailio's auth module (Debian 5.6, /usr/share/doc/kamailio/modules/README.auth.gz, "auth_checks_in_dlg"): the
flags are 1 Request-URI, 2 Call-ID, 4 From tag, 8 source IP; "Without the extra checks the nonce will protect only
against expired values" and nonce_expire defaults to 300 s. The edge set 8 alone and neither nonce_count nor
one_time_nonce, so a response was bound to its source address and nothing else of the request; it now sets 15."""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from sipedge.config import ConfigError, load
from sipedge.front_config import DIGEST_REALM, write_front
from sipedge.supervisor import KAMAILIO, Supervisor, _answers_options, _unprivileged, front_env
from tests.sip.kamailio_front import NUMBER, STRANGER, TRUNK, Front, Peer, running_front
from tests.sip.raw_sip import GOOD_SDP
from tests.sip.test_front_parts import edge
from tests.support.ports import free_port
from tests.support.processes import terminate

needs_kamailio = pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK),
                                    reason="Kamailio is not installed (.ci/run installs it)")

USERNAME, PASSWORD = "pbx", secrets.token_urlsafe(16)
VARIABLE = "PBX_DIGEST_PASSWORD"
DIGEST = f'inbound_digest_username = "{USERNAME}"\ninbound_digest_password_env = "{VARIABLE}"'
OTHER_NUMBER = "+15550100777"
DIGEST_PARTS = 'inbound_digest_username = "pbx"\ninbound_digest_password_env = "PBX_PASSWORD"'  # test_front_parts' env


def _authorization(uri: str, nonce: str, password: str = PASSWORD) -> str:
    """The PBX's answer to a challenge (RFC 2617, qop=auth), as a UA computes it."""
    ha1 = hashlib.md5(f"{USERNAME}:{DIGEST_REALM}:{password}".encode()).hexdigest()  # noqa: S324 - digest's own
    ha2 = hashlib.md5(f"INVITE:{uri}".encode()).hexdigest()  # noqa: S324
    response = hashlib.md5(f"{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}".encode()).hexdigest()  # noqa: S324
    return (f'Proxy-Authorization: Digest username="{USERNAME}", realm="{DIGEST_REALM}", nonce="{nonce}", '
            f'uri="{uri}", response="{response}", qop=auth, nc=00000001, cnonce="c0ffee", algorithm=MD5')


def _challenged(front: Front, trunk: Peer) -> tuple[str, str, str]:
    """A new call's INVITE to NUMBER sent unauthenticated: its Request-URI, its Call-ID and the PBX's
    Proxy-Authorization answering the front's challenge."""
    uri, call_id = f"sip:{NUMBER}@{front.config.sip_address}", secrets.token_hex(6)
    trunk.send("INVITE", uri, call_id=call_id, extra=("Content-Type: application/sdp",), body=GOOD_SDP)
    (challenge,) = trunk.messages()
    nonce = re.search(r'nonce="([^"]+)"', challenge)
    assert nonce is not None, challenge
    return uri, call_id, _authorization(uri, nonce[1])


def _captured(front: Front, trunk: Peer) -> tuple[str, str]:
    """The PBX's own, valid Proxy-Authorization for a call to NUMBER, as an eavesdropper on its UDP path sees it
    go by, and its call's Call-ID; checked to reach a worker."""
    uri, call_id, header = _challenged(front, trunk)
    # Sent again on the same call, as RFC 3261 8.1.3.5 has a UA do (the ACK of the 407 left to the front's sl).
    trunk.send("INVITE", uri, call_id=call_id, cseq=2, extra=(header, "Content-Type: application/sdp"),
               body=GOOD_SDP)
    trunk.messages(0.5)
    assert any(call_id in text for text in front.at_workers()), front.log_path.read_text()[-3000:]
    return header, call_id


def _relays(front: Front, call_id: str) -> int:
    """How many INVITE transactions of `call_id` the front relayed to the workers: its branch ids are the
    transaction's and a branch index after the last dot (`z9hG4bK<hash>.<md5>.<index>`); its retransmissions to a
    worker share their branch, and one more worker tried after a silence is the same transaction's next index."""
    return len({re.findall(r"branch=([^;\r]+)", text)[0].rsplit(".", 1)[0] for text in front.at_workers()
                if text.startswith("INVITE ") and call_id in text})


def _replayed(front: Front, trunk: Peer, header: str, number: str) -> bool:
    """Whether an INVITE for `number` on a call of its own, carrying `header`, reached a worker."""
    call_id = secrets.token_hex(6)
    trunk.send("INVITE", f"sip:{number}@{front.config.sip_address}", call_id=call_id,
               extra=(header, "Content-Type: application/sdp"), body=GOOD_SDP)
    trunk.messages(0.5)
    return any(call_id in text for text in front.at_workers())


@needs_kamailio
@pytest.mark.parametrize("number", [pytest.param(OTHER_NUMBER, id="another-number"),
                                    pytest.param(NUMBER, id="a-second-call")])
def test_a_captured_credential_is_refused_on_a_call_of_its_own(tmp_path: Path, number: str) -> None:
    """MEDIUM. Whoever sees the PBX's UDP signalling (plain SIP: the digest response is in clear) and can send from
    its address (UDP, spoofed; or anyone behind the same NAT) replays one captured Proxy-Authorization on new calls,
    for any number, for nonce_expire (300 s): Kamailio never compares the response's `uri` with the Request-URI,
    and the nonce carries only the source. Each is a bot session the operator pays for, its audio sent to the SDP
    address the attacker wrote. Fix: modparam("auth", "auth_checks_no_dlg", 15) (Request-URI, Call-ID, From tag
    and source: a UA retries a challenged request with the same Call-ID and From, RFC 3261 8.1.3.5), or 9 with
    one_time_nonce. Checked by applying each: both cases pass, and test_front_digest.py (SIPp answering) still
    passes. NOT nonce_count: "If a response includes nc only the normal nonce_expire checks and the nonce_count
    checks will be performed, all the other checks will be ignored" (README.auth 3.5): it drops the source check
    the cut-off relies on; applied, test_front_digest's test_wrong_responses_on_a_nonce_sent_elsewhere_never_cut_
    the_trunk_off fails (a neighbour's nonce is then counted against the trunk's address: a lock-out)."""
    with running_front(tmp_path, trunk_settings=DIGEST, env={VARIABLE: PASSWORD}) as front:
        trunk = Peer(TRUNK, front)
        try:
            header, _ = _captured(front, trunk)
            assert not _replayed(front, trunk, header, number)
        finally:
            trunk.close()


@needs_kamailio
def test_a_captured_credential_is_refused_on_its_own_call_again(tmp_path: Path) -> None:
    """MEDIUM. The same replay on the captured call's own Call-ID, From tag and number (all the nonce binds), as
    a new INVITE (CSeq 3) within the nonce's 5 minutes, reached a worker again: a second session, its SDP the
    attacker's (qop=auth covers no body). one_time_nonce would close it but also challenges a UA's retransmission
    of a request answered statelessly (SIPp saw [407, 403, 407, 407] on a busy machine). Fixed at the front: a
    Call-ID it relayed with a credential takes no other INVITE outside a call while the nonce is good (403);
    its own retransmissions still go to its transaction (test_the_callers_own_retransmission_is_not_refused)."""
    with running_front(tmp_path, trunk_settings=DIGEST, env={VARIABLE: PASSWORD}) as front:
        trunk = Peer(TRUNK, front)
        try:
            header, call_id = _captured(front, trunk)
            trunk.send("INVITE", f"sip:{NUMBER}@{front.config.sip_address}", call_id=call_id, cseq=3,
                       extra=(header, "Content-Type: application/sdp"), body=GOOD_SDP)
            answers = [m.split("\r\n", 1)[0] for m in trunk.messages(0.5)]
            assert answers == ["SIP/2.0 403 Forbidden"]
            # The replay (CSeq 3) reached no worker. Counted by its own CSeq: the front may still retransmit
            # the captured call's admitted INVITE to its worker meanwhile (its timer, later at load).
            replays = [text for text in front.at_workers() if call_id in text and "CSeq: 3 INVITE" in text]
            assert replays == [], replays
        finally:
            trunk.close()


@needs_kamailio
def test_the_callers_own_retransmission_is_not_refused(tmp_path: Path) -> None:
    """The PBX's admitted INVITE sent again as itself (same branch and CSeq: a UDP retransmission, RFC 3261
    17.1.1.2), at once (where another of Kamailio's processes may still be relaying the first) and again once it
    was relayed: never refused nor challenged, the call relayed to a worker once."""
    with running_front(tmp_path, trunk_settings=DIGEST, env={VARIABLE: PASSWORD}) as front:
        for worker in front.workers:
            worker.answers = ("100 Trying",)  # as PJSIP does at once, then rings: a silent worker is timed out
        trunk = Peer(TRUNK, front)
        try:
            uri, call_id, header = _challenged(front, trunk)
            extra = (header, "Content-Type: application/sdp")
            for again in (False, True):
                trunk.send("INVITE", uri, call_id=call_id, cseq=2, extra=extra, body=GOOD_SDP, same_branch=again)
            answers = [m.split("\r\n", 1)[0] for m in trunk.messages(1.0)]
            trunk.send("INVITE", uri, call_id=call_id, cseq=2, extra=extra, body=GOOD_SDP, same_branch=True)
            answers += [m.split("\r\n", 1)[0] for m in trunk.messages(1.0)]
            assert answers and set(answers) == {"SIP/2.0 100 Trying"}, answers
            assert _relays(front, call_id) == 1, _relayed_where(front, call_id)
        finally:
            trunk.close()


def _relayed_where(front: Front, call_id: str) -> list[tuple[int, str, str]]:
    """Each INVITE of `call_id` a worker got: the worker's index, its top Via's branch and its Via lines' count (a
    second branch at one worker: two transactions; at another: a failover after the first worker's silence)."""
    return [(index, re.findall(r"branch=([^;\r]+)", text)[0], str(text.count("\nVia:")))
            for index, worker in enumerate(front.workers) for text in worker.received
            if text.startswith("INVITE ") and call_id in text]


@needs_kamailio
def test_the_same_invite_after_its_transaction_ended_is_dropped(tmp_path: Path) -> None:
    """The admitted INVITE resent as itself (same branch and CSeq, an SDP anyone's) once its transaction is over
    (a worker's 486, ACKed): no UA retransmits then (RFC 3261 17.1.1.2), so it is a replay; the front neither
    relays it again nor refuses it (a 403 would answer a late retransmission of the caller's own): it drops it."""
    with running_front(tmp_path, trunk_settings=DIGEST, env={VARIABLE: PASSWORD}) as front:
        for worker in front.workers:
            worker.answers = ("486 Busy Here",)
        trunk = Peer(TRUNK, front)
        try:
            uri, call_id, header = _challenged(front, trunk)
            extra = (header, "Content-Type: application/sdp")
            trunk.send("INVITE", uri, call_id=call_id, cseq=2, extra=extra, body=GOOD_SDP)
            answers = [m.split("\r\n", 1)[0] for m in trunk.messages(1.0)]
            assert "SIP/2.0 486 Busy Here" in answers, answers
            trunk.send("ACK", uri, call_id=call_id, cseq=2, to_tag="worker", same_branch=True)
            # While the front's transaction lasts (tm's wait timer) it answers the resent INVITE with its 486;
            # then nothing answers it.
            deadline = time.monotonic() + 60
            while True:
                trunk.send("INVITE", uri, call_id=call_id, cseq=2, extra=extra, body=GOOD_SDP, same_branch=True)
                answers = [m.split("\r\n", 1)[0] for m in trunk.messages(1.0)]
                if not answers:
                    break
                assert set(answers) == {"SIP/2.0 486 Busy Here"} and time.monotonic() < deadline, answers
            trunk.messages(1.0)
            assert _relays(front, call_id) == 1, front.at_workers()
        finally:
            trunk.close()


@needs_kamailio
@pytest.mark.skipif(os.geteuid() != 0 or not _unprivileged(), reason="Kamailio drops to nobody only when run as root")
def test_kamailios_environment_is_not_readable_by_other_nobody_processes(tmp_path: Path) -> None:
    """MEDIUM. docs/sip.md says Kamailio, dropped to nobody, leaves its /proc/PID/environ readable by root alone.
    It does not: Kamailio calls prctl(PR_SET_DUMPABLE, 1) after setuid unless disable_core_dump=yes, so
    /proc/PID/environ of every Kamailio process is owned by nobody, and any other process running as nobody (a
    shared account: NFS squash, other daemons, containers mapped to 65534) reads the inbound password. Measured
    here: `setpriv --reuid=65534 cat /proc/<kamailio>/environ` prints PBX_DIGEST_PASSWORD=...; with
    `disable_core_dump=yes` in the cfg the files are root's and the read is refused. Fix: write
    disable_core_dump=yes into kamailio.cfg (and/or run as Debian's own `kamailio` user instead of `nobody`)."""
    config = edge(tmp_path, "workers = 2", DIGEST_PARTS)
    folder = tmp_path / "front"
    folder.mkdir(mode=0o755)
    files = write_front(config, folder, 3, "t" * 43)
    for path in (files.config, files.workers):
        path.chmod(0o644)  # nobody reads them after the drop, as the edge's private folder is made readable to it
    tmp_path.chmod(0o755)
    password = secrets.token_urlsafe(16)
    env = front_env({"PATH": "/usr/bin:/bin", "PBX_PASSWORD": password}, config)
    # The edge's address is 10.0.0.5, not ours: listen on loopback instead, nothing else changed.
    port = free_port(socket.SOCK_DGRAM)
    text = files.config.read_text()
    assert "listen=udp:10.0.0.5:5060\n" in text
    files.config.write_text(text.replace("listen=udp:10.0.0.5:5060\n", f"listen=udp:127.0.0.1:{port}\n"))
    argv = [KAMAILIO, "-f", str(files.config), "-DD", "-E", "-Y", str(folder), "-w", str(folder), *_unprivileged()]
    log = (tmp_path / "kamailio.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 30
        while not _answers_options("127.0.0.1", port):
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "kamailio.log").read_text()
        nobody = pwd.getpwnam("nobody")
        children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True, timeout=10,
                                  check=False).stdout.split()
        leaked = []
        for pid in [str(process.pid), *children]:
            read = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                                   "--clear-groups", "cat", f"/proc/{pid}/environ"],
                                  capture_output=True, timeout=10, check=False)
            if password.encode() in read.stdout:
                leaked.append(pid)
        assert leaked == []
    finally:
        terminate(process)
        log.close()


def test_the_workers_are_not_given_the_inbound_passwords(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LOW. Only Kamailio checks the inbound credential, yet each PJSIP worker (which parses every admitted
    call's SDP and RTP, and runs as the edge's user) holds every trunk's inbound password in its environment:
    {**os.environ} in Supervisor._children. Fix: drop the inbound password variables from the workers' env
    (config.trunks[].inbound_digest.password_env), as front_env keeps Kamailio's to what it needs."""
    monkeypatch.setenv("PBX_PASSWORD", "secret")
    supervisor = Supervisor(edge(tmp_path, "workers = 2", DIGEST_PARTS))
    try:
        children = {child.name: child for child in supervisor._children()}
    finally:
        shutil.rmtree(supervisor._folder, ignore_errors=True)
    assert "PBX_PASSWORD" not in children["worker 0"].env


@pytest.mark.parametrize("password", ["a", "1234", "password"])
def test_a_guessable_inbound_password_is_refused(tmp_path: Path, password: str) -> None:
    """MEDIUM. Over UDP (the default) every digest response crosses the network in clear: MD5(MD5(user:realm:pw)
    :nonce:...) with everything but the password known, so one captured response is cracked offline at GPU speed
    (billions of MD5/s) unless the password is long and random; and online, the per-source cut-off (10 a minute)
    multiplies by the addresses of a range source (the doc's "provider's range"), bounded only by the trunk's 50
    requests/s. The edge takes a 1-character password (and the stack any one line). Fix: refuse inbound passwords
    under ~20 characters (or under ~100 bits by a simple class count) in sipedge/config.py and in
    stacks/config/sip_edge.py's _passwords, naming `openssl rand -base64 24`; say so in docs/sip.md."""
    path = tmp_path / "edge.toml"
    path.write_text(f'sip_address = "10.0.0.5"\nworkers = 2\n[[trunk]]\nname = "pbx"\nsources = ["192.0.2.0/24"]\n'
                    f'numbers = {{ "+14155550199" = "" }}\n{DIGEST_PARTS}\n')
    with pytest.raises(ConfigError, match="PBX_PASSWORD"):
        load({"SIP_EDGE_CONFIG": str(path), "PBX_PASSWORD": password})


@needs_kamailio
@pytest.mark.parametrize(("source", "method"), [(TRUNK, "INVITE"), (TRUNK, "REFER"), (STRANGER, "INVITE")])
def test_a_forged_to_tag_reaches_no_worker_unauthenticated(tmp_path: Path, source: str, method: str) -> None:
    """LOW (pre-existing path, made visible by the credential). The doc says the credential is asked of every
    request outside a call and that requests within a call skip it because "their INVITE was". But "within a
    call" is only `has_totag()`: a request with a made-up To-tag and `Route: <sip:127.0.0.1:WORKER;lr>` goes to
    route[IN_DIALOG], whose loose_route() relays it to that worker, for a Call-ID the front never saw, from the
    digest trunk's address without any credential (and from a stranger's). The real PJSIP then answers 481
    (pjsip/src/pjsip/sip_ua_layer.c, mod_ua_on_rx_request: no dialog set for the To-tag), so no call results, but
    every such request reaches a worker's parser and dialog lookup unauthenticated, and a REFER/NOTIFY guessed
    into a live dialog would need only its Call-ID and tags. Fix: in route[IN_DIALOG], from a digest trunk's source
    or no trunk's, relay by Route only when calls=>$ci or peers=>$ci knows the Call-ID (the front records each call
    it relays), else 481/403 at the front. (Requiring it of every source breaks test_front_guards'
    test_a_trunks_in_dialog_request_still_reaches_the_calls_worker, which relays a trunk's Route-only request by
    design: checked by applying it.)"""
    with running_front(tmp_path, trunk_settings=DIGEST, env={VARIABLE: PASSWORD}) as front:
        trunk = Peer(source, front)
        try:
            call_id = secrets.token_hex(6)
            trunk.send(method, f"sip:{NUMBER}@{front.config.sip_address}", call_id=call_id, to_tag="forged",
                       extra=(f"Route: <sip:127.0.0.1:{front.config.worker_sip_port};lr>",
                              "Content-Type: application/sdp"), body=GOOD_SDP)
            trunk.messages(0.5)
            assert not any(call_id in text for text in front.at_workers())
        finally:
            trunk.close()
