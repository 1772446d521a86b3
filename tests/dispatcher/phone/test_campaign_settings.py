"""The do-not-call settings stop a start with where the bad entry is, never with a traceback or a
number silently dropped (a dropped number would be called)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.campaigns.settings import CampaignSettings
from voicefleet_settings.read import SettingsError


def test_both_lists_count_and_a_files_comments_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    listed = tmp_path / "dnc.txt"
    listed.write_text("# the complaints desk's list\n+14155550101  # asked twice\n\n+14155550102\n")
    settings = CampaignSettings.from_env({"CALLS_DO_NOT_CALL": "+14155550100",
                                          "CALLS_DO_NOT_CALL_FILE": str(listed)})
    assert settings.do_not_call == {"+14155550100", "+14155550101", "+14155550102"}


def test_a_listed_number_that_is_not_e164_is_named() -> None:
    with pytest.raises(SettingsError, match=r"CALLS_DO_NOT_CALL: '4155550100' is not an E\.164 number"):
        CampaignSettings.from_env({"CALLS_DO_NOT_CALL": "+14155550100,4155550100"})


def test_a_files_bad_line_is_named_by_its_number(tmp_path: Path) -> None:
    listed = tmp_path / "dnc.txt"
    listed.write_text("+14155550101\n\n(415) 555-0102\n")
    with pytest.raises(SettingsError, match=r"line 3 of .*dnc\.txt is not an E\.164 number \('\(415\) 555-0102'\)"):
        CampaignSettings.from_env({"CALLS_DO_NOT_CALL_FILE": str(listed)})


@pytest.mark.parametrize("content", [None, b"+14155550101\n\xff\xfe\n"], ids=["missing", "not-utf8"])
def test_a_file_that_cannot_be_read_stops_the_start_naming_the_way_out(tmp_path: Path, content: bytes | None) -> None:
    listed = tmp_path / "dnc.txt"
    if content is not None:
        listed.write_bytes(content)
    with pytest.raises(SettingsError, match=r"CALLS_DO_NOT_CALL_FILE: .*dnc\.txt cannot be read .*UTF-8 file of "
                                            r"numbers, one a line"):
        CampaignSettings.from_env({"CALLS_DO_NOT_CALL_FILE": str(listed)})
