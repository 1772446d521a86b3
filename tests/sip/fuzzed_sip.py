"""A deterministic fuzzed corpus of SIP requests over UDP (tests/sip/test_fuzzed_corpus.py): valid requests out of a
call (INVITE with SDP, one with a digest credential, OPTIONS, REGISTER, CANCEL, ACK) and within one (a re-INVITE,
INFO, ACK, BYE), each mutated MUTATIONS_EACH times by a random.Random(SEED): bits flipped and truncation as zzuf
does, and SIP's own breakage: mandatory headers doubled or missing, an absurd Content-Length, huge header values,
NUL and non-UTF-8 bytes, folded lines and bare LFs, a broken request line, broken SDP (bad m= lines, port 0, codecs
nobody knows, a huge ptime). The corpus holds placeholders (the call's IDs, the sender's address, the edge's port, a
fresh branch and Call-ID per message) that `fill` replaces when each message is sent, so the same seed sends the
same mutations whatever the call."""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable

SEED = 20261203
MUTATIONS_EACH = 30
UDP_MOST = 65000  # below a UDP datagram's 65,507 bytes of payload

# Placeholders, each replaced when a message is sent (a mutation may break one: that message keeps it as it is).
NUMBER, CALLED, SOURCE, PORT = b"@NUMBER@", b"@CALLED@", b"@SOURCE@", b"@PORT@"  # CALLED: the call's number
EDGE_PORT = b"@EDGE_PORT@"
BRANCH, NEW_CALL, CALL_ID, FROM_TAG, TO_TAG = b"@BRANCH@", b"@NEW_CALL@", b"@CALL_ID@", b"@FROM_TAG@", b"@TO_TAG@"

SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 30000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
       b"a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n")
BROKEN_SDP = (
    SDP.replace(b"m=audio 30000 RTP/AVP 0 8 101", b"m=audio abc RTP/AVP 0"),
    SDP.replace(b"m=audio 30000 RTP/AVP 0 8 101", b"m=audio 70000 RTP/AVP"),
    SDP.replace(b"m=audio 30000", b"m=audio 0"),
    SDP.replace(b"RTP/AVP 0 8 101", b"RTP/AVP 96 97").replace(b"PCMU/8000", b"X-NOPE/1").replace(b"PCMA", b"Y-NOPE"),
    SDP.replace(b"a=ptime:20", b"a=ptime:4294967296\r\na=maxptime:99999999999"),
    SDP.replace(b"c=IN IP4 127.0.0.1\r\n", b"c=IN IP6 ::ffff:zz\r\n"),
    SDP.replace(b"c=IN IP4 127.0.0.1\r\n", b""),
    SDP + b"m=audio 30002 RTP/AVP 0\r\n" * 200,
    SDP.replace(b"m=audio", b"m=video").replace(b"RTP/AVP", b"RTP/SAVPF"),
    SDP.replace(b"a=rtpmap:0 PCMU/8000", b"a=rtpmap:0 PCMU/0/-1\r\na=fmtp:0 " + b"x" * 4000),
    b"v=0\r\n" + b"\xff\xfe\x00" * 40,
)
MANDATORY = (b"Via", b"From", b"To", b"Call-ID", b"CSeq", b"Max-Forwards", b"Content-Length", b"Contact")
CONTENT_LENGTHS = (b"-1", b"99999999999999999999999", b"4294967296", b"2147483648", b"abc", b"0x10", b"65536", b"")
REQUEST_LINES = (b"INVITE sip:@NUMBER@@127.0.0.1:@EDGE_PORT@ SIP/3.0", b"FROBNICATE sip:x@127.0.0.1 SIP/2.0",
                 b"INVITE SIP/2.0", b"INVITE sip:@NUMBER@@127.0.0.1:@EDGE_PORT@", b"INVITE <> SIP/2.0",
                 b"INVITE sip:" + b"9" * 5000 + b"@127.0.0.1 SIP/2.0", b"INVITE tel:@NUMBER@ SIP/2.0",
                 b"SIP/2.0 200 OK", b" INVITE  sip:@NUMBER@@127.0.0.1  SIP/2.0 ")
ODD_BYTES = (b"\x00", b"\xff", b"\xfe\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\x80", b"\r", b"\n", b"%00", b"\x1b[2J")


def _request(method: bytes, cseq: int, *, in_call: bool, body: bytes = b"", content_type: bytes = b"",
             extra: bytes = b"") -> bytes:
    call, number = (CALL_ID, CALLED) if in_call else (NEW_CALL, NUMBER)
    to = b"<sip:" + number + b"@127.0.0.1>" + (b";tag=" + TO_TAG if in_call else b"")
    from_tag = FROM_TAG if in_call else b"ft" + NEW_CALL
    headers = (b"Via: SIP/2.0/UDP " + SOURCE + b":" + PORT + b";branch=z9hG4bK" + BRANCH + b";rport\r\n"
               b"Max-Forwards: 70\r\nFrom: <sip:+14155550100@127.0.0.1>;tag=" + from_tag + b"\r\n"
               b"To: " + to + b"\r\nCall-ID: " + call + b"\r\nCSeq: " + str(cseq).encode() + b" " + method + b"\r\n"
               b"Contact: <sip:caller@" + SOURCE + b":" + PORT + b">\r\n" + extra
               + (b"Content-Type: " + content_type + b"\r\n" if content_type else b"")
               + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    target = b"sip:127.0.0.1:" + EDGE_PORT if method == b"REGISTER" else b"sip:" + number + b"@127.0.0.1:" + EDGE_PORT
    return method + b" " + target + b" SIP/2.0\r\n" + headers + body


CREDENTIAL = (b'Proxy-Authorization: Digest username="pbx", realm="voicefleet", nonce="bm9uY2U=", '
              b'uri="sip:@NUMBER@@127.0.0.1", response="00000000000000000000000000000000", algorithm=MD5\r\n')
VALID = {
    "invite": _request(b"INVITE", 1, in_call=False, body=SDP, content_type=b"application/sdp"),
    "invite with a credential": _request(b"INVITE", 2, in_call=False, body=SDP, content_type=b"application/sdp",
                                         extra=CREDENTIAL),
    "options": _request(b"OPTIONS", 1, in_call=False, extra=b"Accept: application/sdp\r\n"),
    "register": _request(b"REGISTER", 1, in_call=False, extra=b"Expires: 3600\r\n"),
    "cancel": _request(b"CANCEL", 1, in_call=False),
    "ack": _request(b"ACK", 1, in_call=False),
    "re-invite": _request(b"INVITE", 20, in_call=True, body=SDP.replace(b"o=- 1 1", b"o=- 1 2"),
                          content_type=b"application/sdp"),
    "info": _request(b"INFO", 21, in_call=True, body=b"Signal=5\r\nDuration=160\r\n",
                     content_type=b"application/dtmf-relay"),
    "ack in the call": _request(b"ACK", 1, in_call=True),
    "bye": _request(b"BYE", 22, in_call=True),
}


def _head_and_body(message: bytes) -> tuple[list[bytes], bytes]:
    head, _, body = message.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), body


def _join(lines: list[bytes], body: bytes) -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def flip_bits(message: bytes, rng: random.Random) -> bytes:
    data = bytearray(message)
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def truncate(message: bytes, rng: random.Random) -> bytes:
    return message[:rng.randrange(1, len(message))]


def duplicate_header(message: bytes, rng: random.Random) -> bytes:
    lines, body = _head_and_body(message)
    name = rng.choice(MANDATORY)
    found = [i for i, line in enumerate(lines) if line.lower().startswith(name.lower() + b":")]
    if not found:
        return message
    copy = lines[found[0]] if rng.random() < 0.5 else name + b": " + rng.choice((b"0", b"2 BYE", b"x", b"<sip:a@b>"))
    lines.insert(rng.randrange(1, len(lines) + 1), copy)
    return _join(lines, body)


def drop_header(message: bytes, rng: random.Random) -> bytes:
    lines, body = _head_and_body(message)
    name = rng.choice(MANDATORY).lower() + b":"
    return _join([line for line in lines if not line.lower().startswith(name)], body)


def absurd_content_length(message: bytes, rng: random.Random) -> bytes:
    lines, body = _head_and_body(message)
    value = rng.choice((*CONTENT_LENGTHS, str(len(body) + rng.randint(1, 100000)).encode()))
    return _join([b"Content-Length: " + value if line.lower().startswith(b"content-length:") else line
                  for line in lines], body)


def huge_header(message: bytes, rng: random.Random) -> bytes:
    lines, body = _head_and_body(message)
    size = rng.choice((1000, 8000, 30000, 60000))
    grown = rng.choice((b"Subject: " + b"A" * size, b"Via: SIP/2.0/UDP 127.0.0.1;" + b"p;" * (size // 2),
                        b"From: \"" + b"B" * size + b"\" <sip:x@127.0.0.1>;tag=1", b"X-" + b"h" * size + b": 1",
                        b"Route: " + b"<sip:127.0.0.1;lr>," * (size // 20), b"Accept: " + b"a/b," * (size // 4)))
    lines.insert(rng.randrange(1, len(lines) + 1), grown)
    return _join(lines, body)


def odd_bytes(message: bytes, rng: random.Random) -> bytes:
    data = message
    for _ in range(rng.randint(1, 5)):
        at = rng.randrange(len(data))
        data = data[:at] + rng.choice(ODD_BYTES) + data[at:]
    return data


def folded_lines(message: bytes, rng: random.Random) -> bytes:
    lines, body = _head_and_body(message)
    at = rng.randrange(1, len(lines))
    lines[at] = lines[at].replace(b": ", b":\r\n \t", 1) if rng.random() < 0.5 else lines[at]
    joined = _join(lines, body)
    return joined.replace(b"\r\n", b"\n") if rng.random() < 0.5 else joined


def broken_request_line(message: bytes, rng: random.Random) -> bytes:
    lines, body = _head_and_body(message)
    lines[0] = rng.choice(REQUEST_LINES)
    return _join(lines, body)


def broken_sdp(message: bytes, rng: random.Random) -> bytes:
    lines, _ = _head_and_body(message)
    sdp = rng.choice(BROKEN_SDP)
    kept = [line for line in lines if not line.lower().startswith((b"content-length:", b"content-type:"))]
    return _join([*kept, b"Content-Type: application/sdp", b"Content-Length: " + str(len(sdp)).encode()], sdp)


MUTATIONS: tuple[Callable[[bytes, random.Random], bytes], ...] = (
    flip_bits, truncate, duplicate_header, drop_header, absurd_content_length, huge_header, odd_bytes, folded_lines,
    broken_request_line, broken_sdp)


def corpus(seed: int = SEED) -> list[tuple[str, bytes]]:
    """Each valid request's MUTATIONS_EACH mutants (one to three mutations each), named by request and mutations,
    interleaved (each request's first, then each one's second...) so that no kind comes in a burst."""
    rng = random.Random(seed)
    mutants: dict[str, list[tuple[str, bytes]]] = {name: [] for name in VALID}
    for name, message in VALID.items():
        for _ in range(MUTATIONS_EACH):
            applied = rng.sample(MUTATIONS, rng.choice((1, 1, 2, 3)))
            mutant = message
            for mutation in applied:
                mutant = mutation(mutant, rng)[:UDP_MOST] or b"\r\n"
            mutants[name].append((f"{name}: {', '.join(m.__name__ for m in applied)}", mutant))
    return [each[i] for i in range(MUTATIONS_EACH) for each in mutants.values()]


def fill(message: bytes, values: dict[bytes, bytes]) -> bytes:
    """`message` with its placeholders replaced by `values`, and a fresh branch and Call-ID of its own."""
    for placeholder, value in {**values, BRANCH: secrets.token_hex(8).encode(),
                               NEW_CALL: secrets.token_hex(8).encode()}.items():
        message = message.replace(placeholder, value)
    return message[:UDP_MOST]
