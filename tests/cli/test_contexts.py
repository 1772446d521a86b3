"""`voicefleet context add|use|list`: contexts kept in VOICEFLEET_CONFIG_DIR, the key never written
(only the variable's name or the command), and a context whose key cannot be had is one line, exit 2,
before anything is sent."""

from __future__ import annotations

import json
import shlex
import socket
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from tests.cli.releases_api import ADMIN_KEY, Releases, handler
from tests.support.ports import free_port
from tests.support.threaded_http import serving
from voicefleet.main import voicefleet

SECRET = "vf-admin-context-9b3e51c2d7"


def run(config: Path, *args: str, **env: str) -> Result:
    return CliRunner().invoke(voicefleet, list(args), prog_name="voicefleet",
                              env={"VOICEFLEET_CONFIG_DIR": str(config), "VOICEFLEET_URL": "",
                                   "VOICEFLEET_ADMIN_KEY": "", "VOICEFLEET_API_KEY": "", **env})


def written(config: Path) -> str:
    return "".join(path.read_text() for path in config.rglob("*") if path.is_file())


def test_contexts_are_added_listed_and_used_and_no_key_is_written(tmp_path: Path) -> None:
    store, config = tmp_path / "secret-store", tmp_path / "config"
    store.mkdir()
    (store / "admin-key").write_text(SECRET + "\n")
    url, far = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    assert run(config, "context", "add", "local", "--url", url, "--key-env", "VF_LOCAL_KEY").exit_code == 0
    printing = f"{shlex.quote(sys.executable)} -c 'print(open({json.dumps(str(store / 'admin-key'))}).read())'"
    assert run(config, "context", "add", "prod", "--url", far, "--key-command", printing).exit_code == 0
    used = run(config, "context", "use", "local", VF_LOCAL_KEY=SECRET)
    assert used.exit_code == 0 and used.stdout == f"using context local ({url})\n"
    listed = run(config, "context", "list").stdout.splitlines()
    assert listed[0].split() == ["NAME", "URL", "ROLE", "KEY", "FROM"]
    assert listed[1].split() == ["*", "local", url, "admin", "env", "VF_LOCAL_KEY"]
    assert listed[2].split()[:4] == ["prod", far, "admin", "command"]
    body = json.loads(run(config, "context", "list", "--json").stdout)
    assert body["current"] == "local" and body["contexts"]["local"]["key_env"] == "VF_LOCAL_KEY"
    # A command now goes to the context's address (nothing listens there: exit 3 names it) with its key.
    sent = run(config, "sessions", VF_LOCAL_KEY=SECRET)
    assert sent.exit_code == 3 and url in sent.stderr
    run(config, "context", "use", "prod")
    printed = run(config, "sessions")  # its key command ran and gave a key (else exit 2)
    assert printed.exit_code == 3 and far in printed.stderr
    assert SECRET not in written(config) and "VF_LOCAL_KEY" in written(config)


def test_a_context_naming_a_missing_variable_says_what_to_do(tmp_path: Path) -> None:
    run(tmp_path, "context", "add", "staging", "--url", f"http://127.0.0.1:{free_port()}", "--key-env", "VF_STAGING")
    run(tmp_path, "context", "use", "staging")
    result = run(tmp_path, "sessions")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "voicefleet: context staging takes its key from VF_STAGING, which is not set: export VF_STAGING, or "
        f"`voicefleet context add staging --url {json.loads(written(tmp_path))['contexts']['staging']['url']} "
        "--key-env OTHER_VARIABLE`"]


def test_a_failing_key_command_is_one_line(tmp_path: Path) -> None:
    failing = f"{shlex.quote(sys.executable)} -c 'raise SystemExit(4)'"
    run(tmp_path, "context", "add", "broken", "--url", f"http://127.0.0.1:{free_port()}", "--key-command", failing)
    run(tmp_path, "context", "use", "broken")
    result = run(tmp_path, "sessions")
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "gave no key (exit 4)" in result.stderr


def test_bad_input_changes_nothing(tmp_path: Path) -> None:
    for args, said in [(("add", "x", "--url", "voice.example.com"), "--url must be the dispatcher's address"),
                       (("add", "x", "--url", "https://a.example", "--key-env", SECRET), "not its value"),
                       (("add", "x", "--url", "https://a.example", "--key-env", "A", "--key-command", "b"), "not both"),
                       (("add", "../x", "--url", "https://a.example"), "context name"),
                       (("use", "missing"), "no context missing (known: none yet)")]:
        result = run(tmp_path, "context", *args)
        assert result.exit_code == 2 and said in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "contexts.json").exists()


def test_the_environment_is_over_the_context(tmp_path: Path) -> None:
    run(tmp_path, "context", "add", "far", "--url", "https://voice.example.com", "--key-env", "VF_FAR")
    run(tmp_path, "context", "use", "far")
    here = f"http://127.0.0.1:{free_port()}"
    result = run(tmp_path, "sessions", VOICEFLEET_URL=here, VOICEFLEET_ADMIN_KEY=SECRET)
    assert result.exit_code == 3 and here in result.stderr  # its key was not asked for: VF_FAR is unset


def test_a_key_command_printing_more_than_the_key_never_shows_it(tmp_path: Path) -> None:
    # A secret store's `show` prints the key, then more lines (a password manager's notes): a key
    # with a line break in it is no header value, and the HTTP client's refusal quotes the header.
    shown = tmp_path / "shown"
    shown.write_text(f"{SECRET}\nurl: https://voice.example.com\n")
    printing = f"{shlex.quote(sys.executable)} -c 'print(open({json.dumps(str(shown))}).read())'"
    with socket.create_server(("127.0.0.1", 0)) as listening:
        url = f"http://127.0.0.1:{listening.getsockname()[1]}"
        run(tmp_path, "context", "add", "notes", "--url", url, "--key-command", printing)
        run(tmp_path, "context", "use", "notes")
        result = run(tmp_path, "sessions")
    assert SECRET not in result.output + result.stderr
    assert result.exit_code == 2 and result.stderr.splitlines() == [
        "voicefleet: context notes: its key command printed more than one line: make it print the key alone"]


def test_a_key_variable_holding_a_line_break_is_refused_without_showing_it(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listening:
        url = f"http://127.0.0.1:{listening.getsockname()[1]}"
        result = run(tmp_path, "sessions", VOICEFLEET_URL=url, VOICEFLEET_ADMIN_KEY=f"{SECRET}\nsecond line")
    assert SECRET not in result.output + result.stderr
    assert result.exit_code == 2 and "VOICEFLEET_ADMIN_KEY holds more than a key" in result.stderr


def test_a_contexts_address_gets_only_the_contexts_key(tmp_path: Path) -> None:
    # An admin key exported for one deployment never goes to another that the context in use names.
    releases = Releases()
    with serving(handler(releases)) as staging:
        run(tmp_path, "context", "add", "staging", "--url", staging, "--key-env", "VF_STAGING")
        run(tmp_path, "context", "use", "staging")
        result = run(tmp_path, "releases", VF_STAGING=ADMIN_KEY, VOICEFLEET_ADMIN_KEY=SECRET)
    assert result.exit_code == 0, result.output
    assert releases.authorizations == [f"Bearer {ADMIN_KEY}"]


def test_an_address_given_beside_the_context_gets_none_of_the_contexts_keys(tmp_path: Path) -> None:
    releases = Releases()
    run(tmp_path, "context", "add", "prod", "--url", "https://voice.example.com", "--key-env", "VF_PROD")
    run(tmp_path, "context", "use", "prod")
    with serving(handler(releases)) as elsewhere:
        for given in (["--url", elsewhere], []):
            run(tmp_path, "releases", *given, VF_PROD=SECRET, **({} if given else {"VOICEFLEET_URL": elsewhere}))
    assert releases.authorizations == [None, None]
