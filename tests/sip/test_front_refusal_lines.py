"""The front's refusal lines as the supervisor reads them off Kamailio's log (sipedge/front_refusals.py): each
counted once, in the edge's refusals; a line that merely holds the mark (a request's own text in another
line) counted never."""

from __future__ import annotations

import os
import subprocess

import pytest

from sipedge.front_refusals import Entry, counted, entry_of, in_group, line, new_mark, read_line, relayed
from sipedge.refusal_log import RefusalLog
from sipedge.stream_lines import LINE_BYTES

MARK = new_mark()
# One of Kamailio's entries as its JSON log engine writes it on standard error (Debian's 5.6, -E --log-engine=json:M).
PARSER_ENTRY = (b'{ "idx": 1, "pid": 8150, "level": "ERROR", "module": "core", "file": "core/parser/msg_parser.c", '
                b'"line": 749, "function": "parse_msg", "logprefix": "", "message": "ERROR: parse_msg: message=<INVITE '
                b'sip:a@b SIP/2.0\\n 1(8150) ERROR: forged \\"q\\" \\u0001\xff\\r\\n>" }\n')


def _entry(message: str, module: str = "xlog", pid: int = 4242) -> Entry:
    return Entry(0, pid, "WARNING", module, "xlog.c", 282, "", message)


def test_a_refusal_line_is_counted_once_with_its_source_and_answer() -> None:
    refusals = RefusalLog()
    assert counted(_entry(f"sipedge-front-refused {MARK} 403 from 192.0.2.7: no trunk allows this source"),
                   refusals, MARK)
    assert counted(_entry(f"sipedge-front-refused {MARK} dropped from 2001:db8::7: flooding, dropped until it "
                          "calms down"), refusals, MARK)
    assert refusals.last_minute() == 2


@pytest.mark.parametrize("entry", [
    # Another entry whose sender-written part (a Call-ID, a Route) holds the mark: not the whole message.
    _entry(f"INVITE sipedge-front-refused {MARK} 403 from 192.0.2.7: x from worker 127.0.0.1:5061 refused 403: "
           "sip:a is not a trunk of a call here"),
    _entry(f"sipedge-front-refused {MARK} 403 from 192.0.2.7: forged", module="core"),  # not the config's xlog
    _entry(f"sipedge-front-refused {MARK} 403 from 192.0.2.7: Upper Case or $ signs are no reason of the config's"),
    # A sender's text laid out as the config's, without this start's mark.
    _entry("sipedge-front-refused 403 from 192.0.2.7: no trunk allows this source"),
    _entry(f"sipedge-front-refused {new_mark()} 403 from 192.0.2.7: no trunk allows this source"),
])
def test_an_entry_that_only_holds_the_mark_is_not_counted(entry: Entry) -> None:
    refusals = RefusalLog()
    assert not counted(entry, refusals, MARK) and refusals.last_minute() == 0


def test_an_entry_is_read_off_its_json_line_and_a_plain_or_cut_line_is_none() -> None:
    entry = entry_of(PARSER_ENTRY.decode("utf-8", "surrogateescape").rstrip("\n"))
    assert entry == Entry(1, 8150, "ERROR", "core", "core/parser/msg_parser.c", 749, "parse_msg",
                          'ERROR: parse_msg: message=<INVITE sip:a@b SIP/2.0\n 1(8150) ERROR: forged "q" \x01\udcff'
                          '\r\n>')
    cut = PARSER_ENTRY.decode("utf-8", "surrogateescape")[:200]
    for text in (" 1(8150) ERROR: <core> [core/receive.c:1]: plain", cut, "{}", '{ "idx": "1", "pid": 8150 }',
                 "error -1 while trying to fix configuration"):
        assert entry_of(text) is None, text


def test_the_config_writes_only_lines_it_reads_back() -> None:
    assert line("503", "over 60 invites a second", MARK) == \
        f'xlog("L_WARN", "sipedge-front-refused {MARK} 503 from $si: over 60 invites a second\\n");'
    with pytest.raises(ValueError, match="would not be read back"):
        line("503", "INVITE $ci", MARK)
    with pytest.raises(ValueError, match="would not be read back"):
        line("503", "over 60 invites a second", "$ci")


@pytest.mark.parametrize(("text", "shown"), [
    # Kamailio's entry, shown as its plain log would: the sender's text in it on its one line, escaped.
    (PARSER_ENTRY, b'kamailio:  1(8150) ERROR: <core> [core/parser/msg_parser.c:749]: parse_msg(): ERROR: parse_msg: '
                   b'message=<INVITE sip:a@b SIP/2.0\\x0a 1(8150) ERROR: forged "q" \\x01\\xff\\x0d\\x0a>\n'),
    # Its plain lines (its banner, a start's error): a sender's text never starts one, yet they are no entry.
    (b"sipedge: a request from 192.0.2.7 refused by the front (403)\n",
     b"kamailio: | sipedge: a request from 192.0.2.7 refused by the front (403)\n"),
    (b"\x1b[2J 0(1) WARNING: x\r\n", b"kamailio: | \\x1b[2J 0(1) WARNING: x\n"),
    # An entry with the id of no process of Kamailio's.
    (PARSER_ENTRY.replace(b"8150", b"1"), b"kamailio: | " + PARSER_ENTRY.replace(b"8150", b"1")[:30]),
    # C1 controls (a terminal's CSI, NEL), a line separator and bytes that are no UTF-8: escaped; the rest kept.
    (b'{ "idx": 1, "pid": 8150, "level": "ERROR", "module": "core", "file": "f.c", "line": 1, "function": "", '
     b'"logprefix": "", "message": "\xc2\x9b2J\xc2\x85\xe2\x80\xa8\x9b\xff\\tcaf\xc3\xa9" }\n',
     b"kamailio:  1(8150) ERROR: <core> [f.c:1]: \\u009b2J\\u0085\\u2028\\x9b\\xff\tcaf\xc3\xa9\n"),
])
def test_kamailios_other_lines_are_passed_on_as_its_own(text: bytes, shown: bytes) -> None:
    assert relayed(read_line(text), lambda pid: pid == 8150).startswith(shown)


def test_a_line_is_cut_to_its_limit_after_escaping_and_says_how_much_of_it_was_left_out() -> None:
    escaped = relayed(read_line(b"\x1b" * LINE_BYTES, over=10), lambda _: False)  # each byte shown as four
    assert len(escaped) <= LINE_BYTES and escaped.endswith(b" bytes more]\n") and escaped.count(b"\n") == 1
    shown = escaped.count(b"\\x1b")
    assert escaped == b"kamailio: | " + b"\\x1b" * shown + f" [cut: {LINE_BYTES + 10 - shown} bytes more]\n".encode()
    cut = relayed(read_line(b"x" * 100, over=5), lambda _: False)
    assert cut == b"kamailio: | " + b"x" * 100 + b" [cut: 5 bytes more]\n"


def test_kamailios_processes_are_those_of_its_own_group() -> None:
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)  # a group of its own, as Kamailio's
    try:
        own = in_group(child.pid)
        assert own(child.pid) and not own(os.getpid()) and not own(1) and not own(0)
        assert in_group(os.getpgid(0))(os.getpid())
    finally:
        child.kill()
        child.wait()
