"""A region's answer whose HTTP status the asker acts on, signed with that status as well as its body.

`answer_signature` (signing.py) binds an answer's body to the request it answers, not its status: its
askers read only the body of a `200`. A spilled call's transfer (`POST /regions/sip-transfers`,
dispatcher/phone/spilled_transfers.py) is read by its status too: handed over, refused, or an
outcome nobody knows. Its answer therefore also carries `Voicefleet-Region-Answer-Status`, an HMAC
over the status, its `Retry-After` (which the asker passes on), the request's signature and the body's
digest, so whoever sits between the regions without the secret cannot turn a signed refusal into a
success, or a success into a refusal, nor change when the client is told to try again.

A second header beside the first, not in its place: a region of the release before reads the first
alone, and the other routes keep their one header.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from dispatcher.regions.signing import SIGNATURE, VERSION

STATUS_SIGNATURE = "voicefleet-region-answer-status"
RETRY_AFTER = "retry-after"


def status_signature(secret: bytes, request_signature: str, status: int, body: bytes, retry_after: str = "") -> str:
    """What an answer signed with its status carries: its status, `Retry-After` header ("" without) and body bound
    to the request it answers."""
    text = "\n".join(("answer-status", str(status), retry_after, request_signature, hashlib.sha256(body).hexdigest()))
    return VERSION + hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


def status_is_signed(secrets_: Sequence[bytes], request_headers: Mapping[str, str], status: int,
                     answer_headers: Mapping[str, str], body: bytes) -> bool:
    """Whether the answer's status and body were signed with one of `secrets_` (Regions.secrets) for this request."""
    given = answer_headers.get(STATUS_SIGNATURE, "").encode()
    request_signature, retry_after = request_headers.get(SIGNATURE, ""), answer_headers.get(RETRY_AFTER, "")
    return any(hmac.compare_digest(given, status_signature(secret, request_signature, status, body,
                                                           retry_after).encode())
               for secret in secrets_)
