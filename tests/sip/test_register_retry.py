"""The edge's own retry of a REGISTER its trunk's registrar refused for good, as PJSUA sees it: PJSUA retries a
timeout or a server's trouble itself (408, 480, 500, 502, 503, 504, 6xx) and nothing else, so after a 403 the
trunk would stay refused until the edge restarted. Unit level: the schedule, and the account's answer to a 403
(the end-to-end retry of a 503 is tests/sip/test_registration_retry.py's)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pjsua2 as pj
import pytest

from sipedge.config import ConfigError, load
from sipedge.register_retry import RETRY_CAP_SECONDS, UNUSABLE_REGISTRAR, RegisterRetry, backoff, retry_after
from sipedge.registrations import Registrations
from sipedge.stack import _Account
from tests.sip.test_edge_parts import config
from tests.sip.test_trunk_transports import TRUNK

FORBIDDEN = "SIP/2.0 403 Forbidden\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n"


def test_the_wait_doubles_from_half_a_minute_up_to_half_an_hour() -> None:
    assert [backoff(n) for n in range(1, 10)] == [30, 60, 120, 240, 480, 960, 1800, 1800, 1800]
    assert backoff(10_000) == RETRY_CAP_SECONDS  # no overflow however long the refusals last


def test_a_retry_after_is_honoured_up_to_the_cap() -> None:
    assert backoff(1, 300.0) == 300 and backoff(6, 300.0) == 960  # never sooner than asked, nor than the doubling
    assert backoff(1, 86_400.0) == RETRY_CAP_SECONDS


@pytest.mark.parametrize(("message", "seconds"), [
    (FORBIDDEN, None),
    (FORBIDDEN.replace("Content-Length", "Retry-After: 120 (maintenance);duration=3600\r\nContent-Length"), 120),
    (FORBIDDEN.replace("Content-Length", "retry-after :600\r\nContent-Length"), 600),
    (FORBIDDEN.replace("\r\n\r\n", "\r\n\r\nRetry-After: 99\r\n"), None),  # in a body: not the response's
    ("", None),  # no response at all (a timeout: PJSUA's to retry)
], ids=["none", "with-comment", "lower-case", "in-body", "no-response"])
def test_the_retry_after_is_read_from_the_responses_head(message: str, seconds: float | None) -> None:
    assert retry_after(message) == seconds


def test_a_refusal_pjsua_leaves_standing_is_retried_more_slowly_each_time_and_from_the_base_after_success() -> None:
    retry = RegisterRetry()
    assert [retry.answered(403, FORBIDDEN), retry.answered(404), retry.answered(401)] == [30, 60, 120]
    assert retry.answered(200) is None
    assert retry.answered(403, FORBIDDEN) == 30


@pytest.mark.parametrize("code", [408, 480, 500, 502, 503, 504, 600, 603])
def test_a_failure_pjsua_retries_itself_is_left_to_it(code: int) -> None:
    assert RegisterRetry().answered(code) is None


def test_a_register_pjsua_would_not_send_is_asked_again_unless_its_registrar_cannot_be_used_as_written() -> None:
    retry = RegisterRetry()
    assert [retry.not_sent(status) for status in sorted(UNUSABLE_REGISTRAR)] == [None] * len(UNUSABLE_REGISTRAR)
    pending, no_interface = 171001, 120101  # PJSIP_EBUSY; an OS error (ENETUNREACH) finding the local address
    assert [retry.not_sent(pending), retry.not_sent(no_interface)] == [30, 60]  # the refusals' schedule
    assert retry.answered(200) is None and retry.not_sent(pending) == 30


def test_the_waits_start_from_the_trunks_own_interval(tmp_path: Path) -> None:
    registering = TRUNK + 'registrar = "sip:pbx.example.com"\n'
    assert load(config(tmp_path, registering, PBX_PASSWORD="secret")).trunks[0].registrar_retry_seconds == 30
    (trunk,) = load(config(tmp_path, registering + "registrar_retry_seconds = 5\n", PBX_PASSWORD="secret")).trunks
    retry = RegisterRetry(trunk.registrar_retry_seconds)
    assert [retry.answered(403, FORBIDDEN), retry.not_sent(171001), retry.answered(404)] == [5, 10, 20]
    assert backoff(20, base=5) == RETRY_CAP_SECONDS
    for seconds in (1, 1801):  # a registrar hammered each second; a trunk left dark past the cap
        with pytest.raises(ConfigError, match=r"trunk.0.registrar_retry_seconds: Input should be"):
            load(config(tmp_path, registering + f"registrar_retry_seconds = {seconds}\n", PBX_PASSWORD="secret"))


class _Stack:
    """What an account reaches of its SIP stack: the registrations' record and the SIP thread's timed work."""

    def __init__(self) -> None:
        self.registrations = Registrations()
        self.later: list[tuple[float, Callable[[], None]]] = []

    def submit_at(self, when: float, work: Callable[[], None]) -> None:
        self.later.append((when, work))


def _answer(code: int, reason: str, message: str) -> pj.OnRegStateParam:
    prm = pj.OnRegStateParam()
    prm.code, prm.reason, prm.expiration = code, reason, 0
    prm.rdata.wholeMsg = message
    return prm


def test_a_403_schedules_the_accounts_next_register_and_a_later_answer_makes_it_stale() -> None:
    stack = _Stack()
    account = _Account(stack, registers_for="pbx")  # type: ignore[arg-type]
    before = time.monotonic()
    account.onRegState(_answer(403, "Forbidden", FORBIDDEN))
    [(when, work)] = stack.later
    assert before + 30 <= when <= time.monotonic() + 30
    asked = FORBIDDEN.replace("Content-Length", "Retry-After: 400\r\nContent-Length")
    account.onRegState(_answer(403, "Forbidden", asked))
    assert before + 400 <= stack.later[1][0] <= time.monotonic() + 400
    account.onRegState(_answer(200, "OK", "SIP/2.0 200 OK\r\n\r\n"))
    assert len(stack.later) == 2  # registered: nothing more scheduled
    work()  # superseded by the answers since: it registers nothing (an account PJSUA never made would abort)
    stack.later[1][1]()
    account.onRegState(_answer(503, "Service Unavailable", "SIP/2.0 503 Service Unavailable\r\n\r\n"))
    assert len(stack.later) == 2  # PJSUA's own retry covers it
