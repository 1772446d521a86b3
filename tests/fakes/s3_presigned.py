"""An S3 server for the tests: moto's, behind a check of pre-signed URLs as S3 makes it.

moto answers a pre-signed request without checking its signature or its expiry, which would make a
test of "this URL opens one part of one object, for minutes" pass against anything. This WSGI layer
refuses what S3 refuses, with S3's codes: a URL meant to live over a week (403
AuthorizationQueryParametersError), a request past `X-Amz-Date` + `X-Amz-Expires` (403
AccessDenied, "Request has expired"), and one whose query signature, recomputed with botocore's own
query signer over the method, the path and the other query parameters, differs (403
SignatureDoesNotMatch): another key, another upload, another part number or another method. Requests
signed in the `Authorization` header (the dispatcher's own calls) pass to moto as they are.
"""

from __future__ import annotations

import calendar
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.sigv4_check import KnownKey, check_presigned

ACCESS_KEY, SECRET_KEY = "testing", "testing"  # noqa: S105 (moto's, reaches nothing)
REGION = "us-east-1"
MAX_EXPIRES = 604_800  # S3 refuses a pre-signed URL meant to live longer than a week


def refusal(method: str, host: str, path: str, query: str, now: float) -> tuple[str, str] | None:
    """(code, message) S3 answers a pre-signed request with, or None when it would take it."""
    params = dict(parse_qsl(query, keep_blank_values=True))
    if "X-Amz-Signature" not in params:
        return None
    try:
        signed_at = calendar.timegm(time.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
        expired = now > signed_at + int(params["X-Amz-Expires"])
    except (KeyError, ValueError):
        return "AuthorizationQueryParametersError", "X-Amz-Date or X-Amz-Expires is missing or malformed"
    if int(params["X-Amz-Expires"]) > MAX_EXPIRES:
        return "AuthorizationQueryParametersError", "X-Amz-Expires must be less than a week (in seconds) that is 604800"
    if expired:
        return "AccessDenied", "Request has expired"
    # The session token the signer had (the tests' AWS environment may carry moto's "testing" one).
    known = KnownKey(SECRET_KEY, os.environ.get("AWS_SESSION_TOKEN") or None)
    refused = check_presigned(method, path, query, {"host": host}, keys={ACCESS_KEY: known},
                              region=REGION, service="s3", now=now, s3=True)
    return None if refused is None else (refused.code, refused.message)


class PresignedCheck:
    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        refused = refusal(environ["REQUEST_METHOD"], environ.get("HTTP_HOST", ""), environ.get("PATH_INFO", ""),
                          environ.get("QUERY_STRING", ""), time.time())
        if refused is None:
            return self.app(environ, start_response)
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{refused[0]}</Code>'
                f"<Message>{refused[1]}</Message></Error>").encode()
        start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return [body]


@contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 on a loopback port behind the pre-signed check; yields its URL."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, PresignedCheck(DomainDispatcherApplication(create_backend_app)),
                         threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(5)
