"""The front's refusal lines as the supervisor reads them off Kamailio's log (sipedge/front_refusals.py): each
counted once, in the edge's refusals; a line that merely holds the mark (a request's own text in another
line) counted never."""

from __future__ import annotations

import os
import subprocess

import pytest

from sipedge.front_refusals import counted, in_group, line, new_mark, relayed
from sipedge.refusal_log import RefusalLog
from sipedge.stream_lines import LINE_BYTES

PREFIX = " 0(4242) WARNING: <script>: "  # Kamailio's own, with -E and log_stderror
MARK = new_mark()


def test_a_refusal_line_is_counted_once_with_its_source_and_answer() -> None:
    refusals = RefusalLog()
    assert counted(f"{PREFIX}sipedge-front-refused {MARK} 403 from 192.0.2.7: no trunk allows this source\n",
                   refusals, MARK)
    assert counted(f"{PREFIX}sipedge-front-refused {MARK} dropped from 2001:db8::7: flooding, dropped until it "
                   "calms down\n", refusals, MARK)
    assert refusals.last_minute() == 2


@pytest.mark.parametrize("text", [
    # Another line whose sender-written part (a Call-ID, a Route) holds the mark: not at xlog's prefix, or not
    # at the line's end.
    f" 0(4242) WARNING: <script>: INVITE sipedge-front-refused {MARK} 403 from 192.0.2.7: x from worker "
    "127.0.0.1:5061 refused 403: sip:a is not a trunk of a call here",
    f" 0(4242) ERROR: <core> [core/receive.c:1]: sipedge-front-refused {MARK} 403 from 192.0.2.7: forged",
    f"{PREFIX}sipedge-front-refused {MARK} 403 from 192.0.2.7: Upper Case or $ signs are no reason of the config's",
    # A sender's line (its text in the parser's log) laid out as the config's, without this start's mark.
    f"{PREFIX}sipedge-front-refused 403 from 192.0.2.7: no trunk allows this source",
    f"{PREFIX}sipedge-front-refused {new_mark()} 403 from 192.0.2.7: no trunk allows this source",
])
def test_a_line_that_only_holds_the_mark_is_not_counted(text: str) -> None:
    refusals = RefusalLog()
    assert not counted(text, refusals, MARK) and refusals.last_minute() == 0


def test_the_config_writes_only_lines_it_reads_back() -> None:
    assert line("503", "over 60 invites a second", MARK) == \
        f'xlog("L_WARN", "sipedge-front-refused {MARK} 503 from $si: over 60 invites a second\\n");'
    with pytest.raises(ValueError, match="would not be read back"):
        line("503", "INVITE $ci", MARK)
    with pytest.raises(ValueError, match="would not be read back"):
        line("503", "over 60 invites a second", "$ci")


@pytest.mark.parametrize(("text", "shown"), [
    (b" 1(8150) ERROR: <core> [core/parser/parse_via.c:2706]: parse_via(): parsing via on: <garbage\n",
     b"kamailio:  1(8150) ERROR: <core> [core/parser/parse_via.c:2706]: parse_via(): parsing via on: <garbage\n"),
    # The rest of that entry: the request's own text, never a line of the edge's, nor a terminal's escape.
    (b"sipedge: a request from 192.0.2.7 refused by the front (403)\n",
     b"kamailio: | sipedge: a request from 192.0.2.7 refused by the front (403)\n"),
    (b"\x1b[2J 0(1) WARNING: x\r\n", b"kamailio: | \\x1b[2J 0(1) WARNING: x\n"),
    # A request's line laid out as an entry, yet with the id of no process of Kamailio's.
    (b" 0(1) ERROR: <core> [core/receive.c:1]: forged\n",
     b"kamailio: |  0(1) ERROR: <core> [core/receive.c:1]: forged\n"),
    # C1 controls (a terminal's CSI, NEL), a line separator and bytes that are no UTF-8: escaped; the rest kept.
    (b" 1(8150) ERROR: \xc2\x9b2J\xc2\x85\xe2\x80\xa8\x9b\xff\tcaf\xc3\xa9\n",
     b"kamailio:  1(8150) ERROR: \\u009b2J\\u0085\\u2028\\x9b\\xff\tcaf\xc3\xa9\n"),
])
def test_kamailios_other_lines_are_passed_on_as_its_own(text: bytes, shown: bytes) -> None:
    assert relayed(text, lambda pid: pid == 8150) == shown


def test_a_line_is_cut_to_its_limit_after_escaping_and_says_how_much_of_it_was_left_out() -> None:
    escaped = relayed(b"\x1b" * LINE_BYTES, lambda _: False, over=10)  # each byte shown as four
    assert len(escaped) <= LINE_BYTES and escaped.endswith(b" bytes more]\n") and escaped.count(b"\n") == 1
    shown = escaped.count(b"\\x1b")
    assert escaped == b"kamailio: | " + b"\\x1b" * shown + f" [cut: {LINE_BYTES + 10 - shown} bytes more]\n".encode()
    assert relayed(b"x" * 100, lambda _: False, over=5) == b"kamailio: | " + b"x" * 100 + b" [cut: 5 bytes more]\n"


def test_kamailios_processes_are_those_of_its_own_group() -> None:
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)  # a group of its own, as Kamailio's
    try:
        own = in_group(child.pid)
        assert own(child.pid) and not own(os.getpid()) and not own(1) and not own(0)
        assert in_group(os.getpgid(0))(os.getpid())
    finally:
        child.kill()
        child.wait()
