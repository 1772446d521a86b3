"""SIPVicious (PyPI's `sipvicious`, a dev dependency), the scanners attackers run, against `python -m sipedge`
while a call it answered before the scan goes on: svmap from a stranger's address and the trunk's, svwar over
numbers around the served ones, svcrack against a trunk's inbound digest credential. On the one-worker edge
(PJSIP alone) and on the Kamailio front a trunk with a credential brings; the dispatcher is bench/sip_capacity.py's
fake, counting the sessions asked for. What each tool reports is asserted on its own output: the software is not
named, the served numbers are classed as every other, no password is found, and no scan starts a session."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.sip_capacity import FakeDispatcher
from sipedge.front_config import DIGEST_FAILURES
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.fake_dispatcher_thread import new_sessions, serving_fake
from tests.sip.held_call import ANSWER_SECONDS, HeldCall
from tests.sip.raw_sip import status_of
from tests.sip.sipvicious_bound import SAME_FROM_TAG

pytestmark = pytest.mark.slow  # the edge, real PJSIP and Kamailio processes

TRUNK = "127.0.0.1"  # the plain trunk's source (tests/sip/conftest.py); every other loopback address is a stranger
STRANGERS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6")  # one per scan run at once
CONTROL = "127.0.0.9"  # the control's own: the front counts wrong responses and floods by source
PBX_NUMBER, USERNAME, PASSWORD = "+14155550198", "pbx", secrets.token_urlsafe(18)
PBX_TRUNK = (f'[[trunk]]\nname = "pbx"\nnumbers = {{ "{PBX_NUMBER}" = "" }}\ninbound_digest_username = "{USERNAME}"\n'
             'inbound_digest_password_env = "PBX_DIGEST_PASSWORD"\n')  # no sources: its PBX calls from anywhere
SCANNED = range(14155550180, 14155550220)  # svwar's numbers, both served ones among them
WRONG_FIRST = 100  # svcrack's wrong guesses before the real password
SCAN_SECONDS = 60  # each tool's run at most; svcrack's own waits make it the longest (~15 s)
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeDispatcher]:
    with serving_fake() as serving:
        yield serving


@pytest.fixture(scope="module")
def plain_edge(fake: FakeDispatcher, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    with run_edge(f"http://127.0.0.1:{fake.port}", tmp_path_factory.mktemp("sipvicious-plain")) as running:
        yield running


@pytest.fixture(scope="module")
def front_edge(fake: FakeDispatcher, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    with run_edge(f"http://127.0.0.1:{fake.port}", tmp_path_factory.mktemp("sipvicious-front"), trunks=PBX_TRUNK,
                  env={"PBX_DIGEST_PASSWORD": PASSWORD}) as running:
        yield running


def scan(tool: str, source: str, edge: EdgeProcess, *args: str, same_from_tag: bool = False) -> str:
    """`sipvicious_<tool>` from `source` at the edge, its output (stdout and stderr). svwar and svcrack run through
    tests/sip/sipvicious_bound.py, which binds them to `source` as their `-b` should."""
    command = ([str(BIN / "sipvicious_svmap")] if tool == "svmap"
               else [sys.executable, "-m", "tests.sip.sipvicious_bound", tool])
    env = {**os.environ, **({SAME_FROM_TAG: "1"} if same_from_tag else {})}
    done = subprocess.run([*command, "-b", source, "-p", str(edge.sip_port), *args, "127.0.0.1"], env=env,
                          capture_output=True, text=True, timeout=SCAN_SECONDS, check=False)
    return done.stdout + done.stderr


def wordlist(folder: Path, name: str, wrong: int) -> str:
    """A file of `wrong` wrong passwords, then the real one."""
    path = folder / name
    path.write_text("".join(f"guess{n:03d}\n" for n in range(wrong)) + f"{PASSWORD}\n")
    return str(path)


def classed(report: str) -> dict[str, str]:
    """svwar's table: each number it reported, to its class (reqauth, noauth, weird)."""
    return dict(re.findall(r"^\| (\+\d+) +\| (\w+) +\|", report, re.MULTILINE))


def assert_unnamed(report: str, edge: EdgeProcess) -> None:
    """svmap found the edge and could not say what it runs."""
    assert re.search(rf"^\| 127\.0\.0\.1:{edge.sip_port} +\| unknown +\|", report, re.MULTILINE), report
    assert not re.search("pjsip|pjsua|kamailio|voicefleet|sipedge", report, re.IGNORECASE), report


def assert_alike(report: str, served: tuple[str, ...], cls: str) -> None:
    """svwar classed the served numbers as every other it reported, and reported most of them."""
    numbers = classed(report)
    assert all(number in numbers for number in served), report
    assert set(numbers.values()) == {cls}, report
    assert len(numbers) > len(SCANNED) * 3 // 4, report


def scans_during_a_call(edge: EdgeProcess, fake: FakeDispatcher, scans: dict[str, tuple[str, ...]],
                        same_from_tag: tuple[str, ...] = ()) -> dict[str, str]:
    """Each of `scans` (a name to its tool and arguments) at once, each from a stranger's address of its own or the
    trunk's (a name ending in "trunk"), while a call set up before them goes on; the call then ends cleanly, and no
    scan started a session. Each scan's output, by name."""
    before = set(fake.sessions)
    call = HeldCall(edge, TRUNK, NUMBER)
    assert len(new_sessions(fake, before)) == 1, fake.sessions
    sources = dict(zip(scans, STRANGERS, strict=False))
    with ThreadPoolExecutor(len(scans)) as pool:
        running = {name: pool.submit(scan, tool, TRUNK if name.endswith("trunk") else sources[name], edge, *args,
                                     same_from_tag=name in same_from_tag)
                   for name, (tool, *args) in scans.items()}
        reports = {name: future.result() for name, future in running.items()}
    assert edge.process.poll() is None, edge.log()[-3000:]
    assert list(new_sessions(fake, before).values()) == ["joined"], fake.sessions  # the call's; none of the scans'
    meanwhile, bye = call.end()
    assert not [message for message in meanwhile if status_of(message) == 0], meanwhile  # no BYE of the edge's
    assert bye is not None and status_of(bye) == 200, f"{bye}\n{edge.log()[-3000:]}"
    deadline = time.monotonic() + ANSWER_SECONDS
    while list(new_sessions(fake, before).values()) != ["ended"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(new_sessions(fake, before).values()) == ["ended"], fake.sessions
    return reports


def test_on_the_one_worker_edge_the_scanners_learn_nothing_and_its_call_goes_on(
    plain_edge: EdgeProcess, fake: FakeDispatcher,
) -> None:
    span = f"{SCANNED.start}-{SCANNED.stop - 1}"
    reports = scans_during_a_call(plain_edge, fake, {
        "svmap": ("svmap",), "svmap from the trunk": ("svmap",),
        # From a stranger every INVITE is refused alike, so svwar's first probe finds no "unknown number" answer to
        # tell the others by: --force makes it go on and class each one.
        "svwar": ("svwar", "-m", "INVITE", "-e", span, "--template=+%d", "--force"),
    })
    assert_unnamed(reports["svmap"], plain_edge)
    assert_unnamed(reports["svmap from the trunk"], plain_edge)
    assert_alike(reports["svwar"], (NUMBER,), "weird")  # each a 403, served or not


def test_on_the_front_the_scanners_learn_nothing_svcrack_is_stopped_and_its_call_goes_on(
    front_edge: EdgeProcess, fake: FakeDispatcher, tmp_path: Path,
) -> None:
    span = f"{SCANNED.start}-{SCANNED.stop - 1}"
    crack = ("svcrack", "-m", "INVITE", "-u", USERNAME, "-e", PBX_NUMBER, "--maximumtime=3", "-vv", "-d")
    reports = scans_during_a_call(front_edge, fake, {
        "svmap": ("svmap",), "svmap from the trunk": ("svmap",),
        "svwar": ("svwar", "-m", "INVITE", "-e", span, "--template=+%d"),
        "svcrack": (*crack, wordlist(tmp_path, "short", 2)),
        "svcrack keeping its From tag": (*crack, wordlist(tmp_path, "long", WRONG_FIRST)),
    }, same_from_tag=("svcrack keeping its From tag",))
    assert_unnamed(reports["svmap"], front_edge)
    assert_unnamed(reports["svmap from the trunk"], front_edge)
    # The front challenges each INVITE from an address no trunk names before it looks at the number: svwar's first
    # probe, of a random number, is challenged as any would be, and it gives up on the range, classing none.
    war = reports["svwar"]
    assert "authentication request for an unknown extension" in war and "found nothing" in war, war
    assert classed(war) == {}, war
    # As shipped, svcrack answers each challenge with a From tag of its own: the nonce, bound to the challenged
    # request's tag, does not match, so the front challenges again without checking the password, the real one too.
    shipped = reports["svcrack"]
    assert f"trying {PASSWORD}" in shipped and "found nothing" in shipped, shipped
    # Keeping its tag, its guesses are checked: after DIGEST_FAILURES wrong ones the front refuses its requests
    # unchallenged (and pike drops them), so it never gets to try the real password.
    kept = reports["svcrack keeping its From tag"]
    tried = re.findall(r"^DEBUG:ASipOfRedWine:trying (\S+)$", kept, re.MULTILINE)
    assert DIGEST_FAILURES <= len(tried) <= DIGEST_FAILURES + 1 and PASSWORD not in tried, kept
    assert "found nothing" in kept, kept


def test_svcrack_keeping_its_from_tag_finds_a_password_it_tries_early(
    front_edge: EdgeProcess, fake: FakeDispatcher, tmp_path: Path,
) -> None:
    """The control of the test above: the same tool, the real password third in its list, cracks it (its call
    answered, so it reports the user as needing no password), which only the front's limit kept it from there."""
    before = set(fake.sessions)
    report = scan("svcrack", CONTROL, front_edge, "-m", "INVITE", "-u", USERNAME, "-e", PBX_NUMBER,
                  "--maximumtime=3", "-d", wordlist(tmp_path, "early", 2), same_from_tag=True)
    assert re.search(rf"^\| {USERNAME} +\|", report, re.MULTILINE), report
    assert len(new_sessions(fake, before)) == 1, fake.sessions  # its call, answered
