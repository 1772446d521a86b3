"""The command's own basics: `--version`, times as people type them (`--since 10m`), and a `--help`
that imports only what listing the commands needs (no HTTP client, no callers' libraries)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

import pytest
from click.testing import CliRunner

from tests.support.ports import free_port
from voicefleet.loadtest.command import loadtest
from voicefleet.main import voicefleet
from voicefleet.moments import NotAMoment, moment

# The last three: only the commands that read artifacts.
HEAVY = ("httpx", "httpx._main", "rich", "matplotlib", "numpy", "aiortc", "asyncio", "av",
         "voicefleet.artifacts", "voicefleet.artifact_files", "voicefleet.transcript")


def test_version_names_the_installed_package() -> None:
    result = CliRunner().invoke(voicefleet, ["--version"], prog_name="voicefleet")
    assert result.exit_code == 0
    assert result.stdout == f"voicefleet {version('voicefleet')}\n"


@pytest.mark.parametrize(("typed", "ago"), [("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400),
                                            ("1h30m", 5400), ("0s", 0)])
def test_a_time_ago_is_sent_as_the_epoch_seconds_it_names(typed: str, ago: int) -> None:
    assert moment("--since", typed, now=1_800_000_000.25) == f"{1_800_000_000 - ago}.25"


@pytest.mark.parametrize("typed", ["1767225600", "1767225600.25", "2026-01-01T09:00Z", "2026-01-01T09:00:00+02:00",
                                   "2026-01-01"])
def test_an_absolute_time_is_sent_as_typed(typed: str) -> None:
    assert moment("--since", typed, now=0.0) == typed


@pytest.mark.parametrize("typed", ["10x", "ten minutes", "m10", "1.5h", "nan", "yesterday", ""])
def test_a_time_that_does_not_parse_is_refused_with_the_forms_taken(typed: str) -> None:
    with pytest.raises(NotAMoment) as refused:
        moment("--since", typed, now=0.0)
    assert refused.value.format_message().startswith(f"--since {typed!r} is not a time: give a time ago (10m")


@pytest.mark.parametrize("typed", ["100000d", "9" * 400 + "d", "1" + "0" * 5000 + "s", "9999d" * 3000])
def test_a_time_ago_before_1970_is_refused_and_never_overflows(typed: str) -> None:
    # Huge counts once raised OverflowError, or ValueError past Python's 4300-digit int limit: a traceback.
    with pytest.raises(NotAMoment) as refused:
        moment("--since", typed, now=1_800_000_000.0)
    assert "is before 1970: give a time ago (10m" in refused.value.format_message()
    assert len(refused.value.format_message()) < 300  # what was typed, cut short


def test_a_time_ago_takes_ascii_digits_only() -> None:
    with pytest.raises(NotAMoment):
        moment("--since", "\u0663m", now=1_800_000_000.0)  # ARABIC-INDIC DIGIT THREE, which \\d matched


def test_the_command_refuses_it_in_one_line_before_sending_anything() -> None:
    # Nothing listens at the address: a request sent would be exit 3, not the usage error's 2.
    result = CliRunner().invoke(voicefleet, ["sessions", "--since", "10x"], prog_name="voicefleet",
                                env={"VOICEFLEET_URL": f"http://127.0.0.1:{free_port()}"})
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "voicefleet: --since '10x' is not a time: give a time ago (10m, 2h, 1d, 1h30m), epoch seconds "
        "(1767225600) or ISO 8601 (2026-01-01T09:00Z)"]


def test_help_imports_no_http_client_and_no_callers_libraries() -> None:
    code = ("import json, sys\nfrom voicefleet.main import main\nsys.argv = ['voicefleet', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "loadtest" in answer.stdout and "session" in answer.stdout  # the listing was printed
    assert json.loads(answer.stdout.splitlines()[-1]) == []


def test_the_listing_gives_loadtest_its_own_one_line_help() -> None:
    listed = CliRunner().invoke(voicefleet, ["--help"], prog_name="voicefleet").stdout
    row = next(line for line in listed.splitlines() if line.split()[:1] == ["loadtest"])
    assert row.split(None, 1)[1] == loadtest.get_short_help_str(80 - 6 - len("loadtest"))
