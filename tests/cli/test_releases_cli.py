"""`voicefleet releases` against a stand-in of the dispatcher's releases routes on a loopback port
(tests/cli/releases_api.py), through httpx's real transport: the table and --json, each exit code,
the admin key sent as a bearer and never printed, and errors that name the way forward."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.cli.releases_api import ADMIN_KEY, CLIENT_KEY, Releases, handler
from tests.support.threaded_http import serving
from voicefleet.main import voicefleet
from voicefleet.settings import Target, cleartext_warning, target

UNSET = None


@pytest.fixture
def releases() -> Releases:
    return Releases()


@pytest.fixture
def url(releases: Releases) -> Iterator[str]:
    with serving(handler(releases)) as address:
        yield address


def run(*args: str, url: str | None, key: str | None = ADMIN_KEY, env: dict[str, str | None] | None = None) -> Result:
    """The command as a person runs it; whatever it printed, the admin key is not in it."""
    environment = {"VOICEFLEET_URL": url, "VOICEFLEET_ADMIN_KEY": key, **(env or {})}
    result = CliRunner().invoke(voicefleet, list(args), env=environment, prog_name="voicefleet")
    for secret in (ADMIN_KEY, CLIENT_KEY):
        assert secret not in result.output, result.output
    return result


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_list_is_a_table_of_each_release(url: str) -> None:
    result = run("releases", url=url)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "NAME   WEIGHT  STABLE  LIVE  IDLE  SMOKE    EVAL           HEALTH",
        "r-old  90%     yes     3     2     pending  -              healthy",
        "r-new  10%             1     2     passed   3/3 ✓ 12m ago  watching: 12 sessions of the 50 it needs",
    ]
    assert run("releases", "list", url=url).stdout == result.stdout


@pytest.mark.parametrize("args", [["--json", "releases"], ["releases", "--json"], ["releases", "list", "--json"]])
def test_json_prints_the_apis_answer_wherever_the_flag_stands(url: str, releases: Releases, args: list[str]) -> None:
    result = run(*args, url=url)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == releases.view()


def test_the_admin_key_is_sent_as_a_bearer_token(url: str, releases: Releases) -> None:
    assert run("releases", url=url).exit_code == 0
    assert releases.authorizations == [f"Bearer {ADMIN_KEY}"]


def test_set_sends_the_weight_and_prints_the_traffic_it_made(url: str, releases: Releases) -> None:
    result = run("releases", "set", "r-new", "25%", url=url)
    assert result.exit_code == 0, result.output
    assert releases.weights == {"r-old": 75, "r-new": 25}
    assert [line.split()[:2] for line in result.stdout.splitlines()[1:]] == [["r-old", "75%"], ["r-new", "25%"]]


def test_set_json_prints_the_new_releases_body(url: str, releases: Releases) -> None:
    result = run("releases", "set", "r-new", "0", "--json", url=url)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == releases.view()
    assert releases.weights == {"r-old": 100, "r-new": 0}


def test_promote_makes_the_release_stable(url: str, releases: Releases) -> None:
    result = run("releases", "promote", "r-new", url=url)
    assert result.exit_code == 0, result.output
    assert (releases.stable, releases.weights) == ("r-new", {"r-old": 0, "r-new": 100})
    assert result.stdout.splitlines()[2].split()[:3] == ["r-new", "100%", "yes"]


def test_rollback_then_again_is_refused_with_the_apis_code_and_exit_1(url: str, releases: Releases) -> None:
    assert run("releases", "rollback", url=url).exit_code == 0
    assert releases.weights == {"r-old": 100, "r-new": 0}
    again = run("releases", "rollback", url=url)
    assert again.exit_code == 1
    assert again.stdout == ""
    assert again.stderr == ("voicefleet: nothing_to_roll_back (HTTP 409): the stable release r-old already takes "
                            "all traffic; to go back further, promote an older release (POST "
                            "/releases/NAME/promote)\n")


def test_history_lists_the_changes_newest_first(url: str) -> None:
    run("releases", "set", "r-new", "20", url=url)
    run("releases", "rollback", url=url)
    result = run("releases", "history", url=url)
    assert result.exit_code == 0, result.output
    header, newest, oldest = result.stdout.splitlines()
    assert header.split() == ["WHEN", "REGION", "BY", "FROM", "TO", "REASON"]
    assert newest.split()[3:] == ["admin-3f2a", "r-old=80,r-new=20", "r-old=100,r-new=0", "rolled", "back"]
    assert oldest.split()[3:] == ["admin-3f2a", "r-old=90,r-new=10", "r-old=80,r-new=20", "r-new", "set", "to", "20%"]
    limited = run("releases", "history", "--limit", "1", "--json", url=url)
    assert [c["reason"] for c in json.loads(limited.stdout)["changes"]] == ["rolled back"]


def test_an_unknown_release_is_refused_naming_where_the_live_ones_are(url: str) -> None:
    result = run("releases", "set", "r-gone", "10", url=url)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "voicefleet: unknown_release (HTTP 422): no release 'r-gone' is live here; the live ones: r-old, r-new",
        "`voicefleet releases` lists the releases this dispatcher has",
    ]


def test_a_name_never_reaches_another_route(url: str, releases: Releases) -> None:
    """`../rollback` is a (bad) release name, not a way to roll back."""
    result = run("releases", "promote", "../rollback", url=url)
    assert result.exit_code == 1
    assert "unknown_release" in result.stderr and "'../rollback'" in result.stderr
    assert releases.changes == []


def test_a_weight_the_others_cannot_make_up_is_refused_as_the_api_says(url: str) -> None:
    assert run("releases", "rollback", url=url).exit_code == 0
    result = run("releases", "set", "r-old", "50", url=url)
    assert result.exit_code == 1
    assert result.stderr.startswith("voicefleet: weights_not_100 (HTTP 422): r-old is the stable release")


def test_no_admin_key_says_which_variable_to_set(url: str, releases: Releases) -> None:
    result = run("releases", url=url, key=UNSET)
    assert result.exit_code == 1
    assert releases.authorizations == [None]
    assert result.stderr.splitlines()[-1] == ("VOICEFLEET_ADMIN_KEY is not set: set it to one of the dispatcher's "
                                              "DISPATCHER_ADMIN_KEYS")


def test_a_wrong_admin_key_says_to_set_one_of_the_dispatchers(url: str) -> None:
    result = run("releases", url=url, key="vf-admin-not-this-one")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["voicefleet: unauthorized (HTTP 401): invalid admin key",
                                          "set VOICEFLEET_ADMIN_KEY to one of the dispatcher's DISPATCHER_ADMIN_KEYS"]
    assert "vf-admin-not-this-one" not in result.output


def test_a_client_key_is_told_apart_from_an_admin_key(url: str, releases: Releases) -> None:
    result = run("releases", "rollback", url=url, key=CLIENT_KEY)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == ("VOICEFLEET_ADMIN_KEY holds a client API key: set it to one of the "
                                              "dispatcher's DISPATCHER_ADMIN_KEYS")
    assert releases.changes == []


@pytest.mark.parametrize("args", [
    ["releases", "set", "r-new", "101"],
    ["releases", "set", "r-new", "ten"],
    ["releases", "set", "r-new"],
    ["releases", "promote"],
    ["releases", "lst"],
    ["releases", "--timeout", "0"],
    ["releases", "history", "--limit", "0"],
])
def test_a_usage_error_exits_2_and_calls_nothing(url: str, releases: Releases, args: list[str]) -> None:
    result = run(*args, url=url)
    assert result.exit_code == 2, result.output
    assert "Try 'voicefleet" in result.stderr
    assert releases.authorizations == []


@pytest.mark.parametrize("address", ["dispatcher.example.com:8080", "ftp://dispatcher.example.com", "http://[::1",
                                     "http://127.0.0.1:99999", "http://:8080", "http://bad host"])
def test_a_url_that_is_no_address_is_a_usage_error_showing_one_that_works(address: str) -> None:
    result = run("releases", url=address)
    assert result.exit_code == 2, result.output
    assert "VOICEFLEET_URL must be the dispatcher's address, such as http://127.0.0.1:8080" in result.stderr
    flagged = run("releases", "--url", address, url=None)
    assert flagged.exit_code == 2
    assert f"--url must be the dispatcher's address, such as http://127.0.0.1:8080 or https://voice.example.com, " \
           f"not {address!r}" in flagged.stderr


def test_an_unreachable_dispatcher_exits_3_naming_the_url_and_how_to_set_it() -> None:
    address = f"http://127.0.0.1:{closed_port()}"
    result = run("releases", url=address)
    assert result.exit_code == 3
    assert f"cannot reach the dispatcher at {address}" in result.stderr
    assert "--url or VOICEFLEET_URL" in result.stderr


def test_the_url_flag_wins_over_the_environment(url: str) -> None:
    result = run("releases", "--url", url, url=f"http://127.0.0.1:{closed_port()}")
    assert result.exit_code == 0, result.output


def test_a_change_without_an_answer_exits_3_saying_it_may_have_been_made() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        result = run("releases", "rollback", "--timeout", "0.3", url=address)
    assert result.exit_code == 3
    assert f"no answer from {address}/releases/rollback within 0.3 s (ReadTimeout" in result.stderr
    assert "the change may or may not have been made" in result.stderr


def test_a_change_whose_connection_is_dropped_exits_3_saying_it_may_have_been_made() -> None:
    class Hangs(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.close_connection = True  # reads the request, closes without a word

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Hangs) as address:
        result = run("releases", "rollback", url=address)
    assert result.exit_code == 3
    assert f"no answer from {address}/releases/rollback (Server disconnected" in result.stderr
    assert "the change may or may not have been made" in result.stderr


def answering(status: int, body: bytes) -> type[BaseHTTPRequestHandler]:
    """A server that is no dispatcher: every GET gets this status and body."""
    class Answering(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Answering


@pytest.mark.parametrize(("status", "body", "said"), [
    (404, b"<html>Not Found</html>", "/releases is not a route of this dispatcher"),
    (502, b"<html>Bad Gateway</html>", "/releases answered HTTP 502 without an error body"),
    (200, b"<html>welcome</html>", "/releases answered with no JSON object"),
    (200, b"[]", "/releases answered with no JSON object"),
])
def test_a_server_that_is_no_dispatcher_is_named_as_such(status: int, body: bytes, said: str) -> None:
    with serving(answering(status, body)) as address:
        result = run("releases", url=address)
    assert result.exit_code == 1
    assert f"{address}{said}" in result.stderr
    assert "Traceback" not in result.output


def test_the_installed_command_runs_and_keeps_the_exit_codes(url: str, releases: Releases) -> None:
    """The `voicefleet` entry point ([project.scripts]) the project's venv holds."""
    command = Path(sys.executable).parent / "voicefleet"
    environment = {**os.environ, "VOICEFLEET_URL": url, "VOICEFLEET_ADMIN_KEY": ADMIN_KEY}
    listed = subprocess.run([command, "releases", "--json"], env=environment, capture_output=True, text=True,
                            timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["stable"] == "r-old"
    refused = subprocess.run([command, "releases", "promote", "r-gone"], env=environment, capture_output=True,
                             text=True, timeout=60)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert ADMIN_KEY not in refused.stderr + listed.stderr


@pytest.mark.parametrize(("address", "key", "warned"), [
    ("http://voice.example.com", ADMIN_KEY, True),
    ("http://10.0.3.7:8080", ADMIN_KEY, True),
    ("https://voice.example.com", ADMIN_KEY, False),
    ("http://127.0.0.1:8080", ADMIN_KEY, False),
    ("http://[::1]:8080", ADMIN_KEY, False),
    ("http://localhost:8080", ADMIN_KEY, False),
    ("http://voice.example.com", None, False),
])
def test_an_admin_key_about_to_cross_a_network_in_the_clear_is_warned_of(address: str, key: str | None,
                                                                          warned: bool) -> None:
    warning = cleartext_warning(target({}, address, 10.0) if key is None else Target(address, key, 10.0))
    assert (warning is not None) == warned
    assert warning is None or (ADMIN_KEY not in warning and "https://" in warning)


def test_the_admin_key_is_never_in_the_targets_repr() -> None:
    chosen = target({"VOICEFLEET_ADMIN_KEY": ADMIN_KEY}, "http://127.0.0.1:8080", 5.0)
    assert chosen.admin_key == ADMIN_KEY and ADMIN_KEY not in repr(chosen)
