"""The 400 a worker answers a request its PJSIP dropped unparsed (sipedge/unparsed_reply.py): RFC 3261 8.2.6's copy
of the request's Via lines, From, To (tagged), Call-ID and CSeq, whatever form the request wrote them in; nothing
for an ACK, a response, or a request without them. tests/sip/test_pjsip_silent_drops.py runs it on real PJSIP."""

from __future__ import annotations

from sipedge.unparsed_reply import bad_request

HEAD = (b"INVITE sip:+14155550000@127.0.0.1 SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfront\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.7:5060\r\n ;branch=z9hG4bKtrunk\r\n"
        b"f: <sip:+14155550100@192.0.2.7>;tag=caller\r\n"
        b"t: <sip:+14155550000@127.0.0.1>\r\n"
        b"i: call-1@192.0.2.7\r\n"
        b"CSeq: 7 INVITE\r\n"
        b"Session-Expires: soon\r\n")


def lines(reply: bytes | None) -> list[bytes]:
    assert reply is not None
    assert reply.endswith(b"\r\n\r\n")
    return reply.split(b"\r\n")[:-2]


def test_the_answer_copies_the_requests_lines_in_their_full_names_and_tags_its_to() -> None:
    head, *rest = lines(bad_request(HEAD + b"Content-Length: 4\r\n\r\nv=0\n"))
    assert head == b"SIP/2.0 400 Bad Request"
    assert rest[:2] == [b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfront",
                        b"Via: SIP/2.0/UDP 192.0.2.7:5060 ;branch=z9hG4bKtrunk"]  # in order, the folded one joined
    assert rest[2] == b"From: <sip:+14155550100@192.0.2.7>;tag=caller"
    assert rest[3].startswith(b"To: <sip:+14155550000@127.0.0.1>;tag=") and len(rest[3]) > len(b"To: <>;tag=") + 30
    assert rest[4:] == [b"Call-ID: call-1@192.0.2.7", b"CSeq: 7 INVITE", b"Content-Length: 0"]


def test_a_to_tag_of_the_requests_own_is_kept_and_bare_line_feeds_are_lines() -> None:
    request = HEAD.replace(b"127.0.0.1>\r\n", b"127.0.0.1>;TAG=edge\r\n").replace(b"\r\n", b"\n") + b"\n"
    assert b"To: <sip:+14155550000@127.0.0.1>;TAG=edge" in lines(bad_request(request))


def test_no_answer_to_an_ack_a_response_or_a_request_without_a_cseq() -> None:
    assert bad_request(HEAD.replace(b"INVITE sip:", b"ACK sip:", 1) + b"\r\n") is None
    assert bad_request(b"SIP/2.0 200 OK\r\n" + HEAD.split(b"\r\n", 1)[1] + b"\r\n") is None
    assert bad_request(HEAD.replace(b"CSeq: 7 INVITE\r\n", b"") + b"\r\n") is None


def test_no_answer_to_what_pjsip_reads_as_a_response_or_an_ack_whatever_its_case_or_spacing() -> None:
    """PJSIP takes "sip/2.0" or "SIP /2.0" for a response, and a method in any case after any white space: each is
    dropped like any message it cannot parse, and none is a request to answer."""
    rest = HEAD.split(b"\r\n", 1)[1] + b"\r\n"
    for start in (b"sip/2.0 200 OK", b"SIP /2.0 200 OK", b"Sip\t/2.0 180 Ringing", b" SIP/2.0 200 OK",
                  b"ACK\tsip:+14155550000@127.0.0.1 SIP/2.0", b"ack sip:+14155550000@127.0.0.1 SIP/2.0",
                  b"\r\n ACK sip:+14155550000@127.0.0.1 SIP/2.0"):
        assert bad_request(start + b"\r\n" + rest) is None, start


def test_the_answer_is_never_larger_than_the_request_a_spoofer_sent() -> None:
    """Compact names and bare line feeds would have the 400 twice the request's size, relayed by the front to the
    request's source: a spoofer's victim. Such a request is not answered; a real one is."""
    tiny = (b"X s SIP/2.0\nv:SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKfront\n" + b"v:a\n" * 200
            + b"f:a\nt:b\ni:c\nCSeq:1 X\n\n")
    assert bad_request(tiny) is None
    real = HEAD + b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    reply = bad_request(real)
    assert reply is not None and len(reply) <= len(real)
