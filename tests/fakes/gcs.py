"""A Google Cloud Storage server for the tests: the XML API's multipart uploads and objects, the JSON
API's object listing, deletion and holds, and Google's token endpoint for a service account key.

No emulator on PyPI does what the recording store needs: gcp-storage-emulator has no XML multipart
upload, fake-gcs-server's is an unmerged partial one, and neither checks a V4 signature (a test of
"this URL opens one part of one upload, for minutes" would pass against anything). This one follows
GCS's documented contract and is never more lenient:

- a call carries a token the fake's `/token` issued (the JWT-bearer grant, its assertion checked
  against the service account's public key), or a V4 signature (GOOG4-RSA-SHA256) verified against
  that public key over the canonical request rebuilt here from the request as received: method, raw
  path, every query parameter but the signature, the signed headers (host at least) and
  `UNSIGNED-PAYLOAD` (https://cloud.google.com/storage/docs/authentication/signatures). Another
  object, upload, part number or method is 403 `SignatureDoesNotMatch`; past `X-Goog-Date` +
  `X-Goog-Expires` 400 `ExpiredToken`; an expiry over 604800 s 400 `InvalidArgument`;
- multipart (https://cloud.google.com/storage/docs/multipart-uploads): part numbers 1 to 10,000;
  completing needs ascending part numbers whose ETags match (`InvalidPartOrder`, `InvalidPart`), and
  every part but the last of at least 5 MiB (`EntityTooSmall`), none over 5 GiB; an unknown upload
  is 404 `NoSuchUpload`;
- an object under a temporary hold cannot be deleted or overwritten (403 naming the hold).
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import json
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google.auth import jwt as google_jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import FakeApi

ACCOUNT = "vf-dispatcher@vf-test.iam.gserviceaccount.com"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MIN_PART = 5 * 1024 * 1024
MAX_PART = 5 * 1024**3
MAX_PART_NUMBER = 10_000
MAX_EXPIRES = 604800


@dataclass
class Stored:
    data: bytes
    content_type: str
    temporary_hold: bool = False
    metadata: dict[str, str] = field(default_factory=dict)  # the x-goog-meta-* headers it was written with


@dataclass
class Upload:
    bucket: str
    key: str
    content_type: str
    initiated: float
    parts: dict[int, tuple[bytes, str]] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


def _metadata(request: Request) -> dict[str, str]:
    """The custom metadata a write carries, kept with the object and given back on GET and HEAD."""
    return {name: value for name, value in request.headers.items() if name.lower().startswith("x-goog-meta-")}


def xml_error(status: int, code: str, message: str, details: str = "") -> Response:
    extra = f"<Details>{details}</Details>" if details else ""
    body = f"<Error><Code>{code}</Code><Message>{message}</Message>{extra}</Error>"
    return Response(f"<?xml version='1.0' encoding='UTF-8'?>{body}", status_code=status, media_type="application/xml")


def json_error(status: int, reason: str, message: str) -> Response:
    return JSONResponse({"error": {"code": status, "message": message,
                                   "errors": [{"message": message, "domain": "global", "reason": reason}]}},
                        status_code=status)


def _xml(body: str) -> Response:
    return Response(f"<?xml version='1.0' encoding='UTF-8'?>{body}", media_type="application/xml")


def _etag(data: bytes) -> str:
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))


class FakeGcs(FakeApi):
    def __init__(self, buckets: tuple[str, ...] = ("team-calls",)) -> None:
        super().__init__()
        self.objects: dict[str, dict[str, Stored]] = {name: {} for name in buckets}
        self.uploads: dict[str, Upload] = {}
        self.tokens: set[str] = set()
        self.page_size = 1000  # GCS's most per list page; a test lowers it to walk the pages
        self.most_uploads_open = 0  # the most multipart uploads open at once (what a client had under way)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._key_dir = tempfile.TemporaryDirectory(prefix="fake-gcs-")

    @property
    def public_pem(self) -> str:
        return self._key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    @property
    def credentials_file(self) -> str:
        """The dispatcher's service account key file, naming this fake's token endpoint."""
        path = os.path.join(self._key_dir.name, "dispatcher-key.json")
        pem = self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()
        with open(path, "w") as out:
            json.dump({"type": "service_account", "project_id": "vf-test", "private_key_id": "k1",
                       "private_key": pem, "client_email": ACCOUNT, "client_id": "1",
                       "token_uri": f"{self.url}/token"}, out)
        return path

    @property
    def env(self) -> dict[str, str]:
        """What points the dispatcher's GCS store at this fake, with this fake's service account."""
        return {"STORAGE_EMULATOR_HOST": self.url, "GOOGLE_APPLICATION_CREDENTIALS": self.credentials_file}

    def close(self) -> None:
        self._key_dir.cleanup()

    def routes(self) -> list[Route]:
        return [
            Route("/token", self.token, methods=["POST"]),
            Route("/storage/v1/b/{bucket}/o", self.json_list, methods=["GET"]),
            Route("/storage/v1/b/{bucket}/o/{name:path}", self.json_object, methods=["GET", "PATCH", "DELETE"]),
            Route("/{bucket}", self.xml_bucket, methods=["GET"]),
            Route("/{bucket}/{key:path}", self.xml_object, methods=["GET", "HEAD", "PUT", "POST", "DELETE"]),
        ]

    # --- sign-in ---
    async def token(self, request: Request) -> Response:
        """Google's OAuth 2.0 token endpoint, for the JWT-bearer grant of the service account key."""
        form = dict(await request.form())
        try:
            claims = google_jwt.decode(str(form.get("assertion", "")), certs=self.public_pem,  # type: ignore[no-untyped-call]
                                       audience=GOOGLE_TOKEN_AUDIENCE)
        except ValueError:
            return JSONResponse({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, 400)
        if form.get("grant_type") != JWT_BEARER or claims.get("iss") != ACCOUNT:
            return JSONResponse({"error": "invalid_grant", "error_description": "Invalid grant"}, 400)
        if CLOUD_PLATFORM not in str(claims.get("scope", "")).split():
            return JSONResponse({"error": "invalid_scope", "error_description": "Invalid OAuth scope"}, 400)
        token = "ya29." + uuid.uuid4().hex
        self.tokens.add(token)
        return JSONResponse({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _bearer(self, request: Request) -> bool:
        return request.headers.get("authorization", "").removeprefix("Bearer ") in self.tokens

    def _signature_refusal(self, request: Request) -> Response | None:
        """None when the request's V4 signature holds now; else GCS's refusal."""
        query = parse_qsl(request.scope["query_string"].decode(), keep_blank_values=True)
        params = dict(query)
        if params.get("X-Goog-Algorithm") != "GOOG4-RSA-SHA256":
            return xml_error(400, "InvalidArgument", "Invalid argument.", "Unsupported X-Goog-Algorithm")
        try:
            email, day, region, service, kind = params["X-Goog-Credential"].split("/")
            stamp, expires = params["X-Goog-Date"], int(params["X-Goog-Expires"])
            signed_at = calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
            signature = bytes.fromhex(params["X-Goog-Signature"])
            signed_headers = params["X-Goog-SignedHeaders"].split(";")
        except (KeyError, ValueError):
            return xml_error(400, "InvalidArgument", "Invalid argument.", "Malformed V4 signature parameters")
        if (service, kind) != ("storage", "goog4_request") or day != stamp[:8] or "host" not in signed_headers:
            return xml_error(400, "AuthorizationHeaderMalformed", "Invalid credential scope or signed headers.")
        if not 1 <= expires <= MAX_EXPIRES:
            return xml_error(400, "InvalidArgument", "Invalid argument.",
                             f"Max allowed expiration interval is seven days {MAX_EXPIRES}")
        now = time.time()
        if now < signed_at - 60:
            return xml_error(400, "InvalidArgument", "Invalid argument.", "Request is not yet valid")
        if now > signed_at + expires:
            return xml_error(400, "ExpiredToken", "Invalid argument.", f"Request has expired: {stamp}")
        canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                                   for k, v in sorted(query) if k != "X-Goog-Signature")
        headers = "".join(f"{name}:{request.headers.get(name, '').strip()}\n" for name in sorted(signed_headers))
        canonical = "\n".join([request.method, request.scope["raw_path"].decode(), canonical_query, headers,
                               ";".join(sorted(signed_headers)), "UNSIGNED-PAYLOAD"])
        scope = f"{day}/{region}/{service}/{kind}"
        to_sign = "\n".join(["GOOG4-RSA-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        if email != ACCOUNT:
            return xml_error(403, "AccessDenied", "Access denied.", f"{email} is not a known service account")
        public = self._key.public_key()
        try:
            public.verify(signature, to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return xml_error(403, "SignatureDoesNotMatch", "Access denied.",
                             "The request signature we calculated does not match the signature you provided.")
        return None

    def _xml_refusal(self, request: Request, signed_ok: bool = True) -> Response | None:
        if "X-Goog-Signature" in request.query_params:
            return self._signature_refusal(request) if signed_ok else \
                xml_error(403, "AccessDenied", "Access denied.")
        if not self._bearer(request):
            return xml_error(401, "AuthenticationRequired", "Authentication required.")
        return None

    # --- XML API ---
    async def xml_bucket(self, request: Request) -> Response:
        if refused := self._xml_refusal(request, signed_ok=False):
            return refused
        bucket = request.path_params["bucket"]
        if bucket not in self.objects:
            return xml_error(404, "NoSuchBucket", "The specified bucket does not exist.")
        if "uploads" not in request.query_params:
            return xml_error(400, "InvalidArgument", "Invalid argument.", "only ?uploads is served here")
        prefix = request.query_params.get("prefix", "")
        after = (request.query_params.get("key-marker", ""), request.query_params.get("upload-id-marker", ""))
        found = sorted((u.key, upload_id, u) for upload_id, u in self.uploads.items()
                       if u.bucket == bucket and u.key.startswith(prefix) and (u.key, upload_id) > after)
        page, truncated = found[:self.page_size], len(found) > self.page_size
        rows = "".join(f"<Upload><Key>{key}</Key><UploadId>{upload_id}</UploadId>"
                       f"<Initiated>{_iso(u.initiated)}</Initiated></Upload>" for key, upload_id, u in page)
        more = f"<NextKeyMarker>{page[-1][0]}</NextKeyMarker><NextUploadIdMarker>{page[-1][1]}</NextUploadIdMarker>" \
            if truncated else ""
        return _xml(f'<ListMultipartUploadsResult xmlns="{S3_NS}"><Bucket>{bucket}</Bucket>'
                    f"<IsTruncated>{str(truncated).lower()}</IsTruncated>{more}{rows}</ListMultipartUploadsResult>")

    async def xml_object(self, request: Request) -> Response:
        bucket, key = request.path_params["bucket"], request.path_params["key"]
        signed = "X-Goog-Signature" in request.query_params
        part_put = request.method == "PUT" and "uploadId" in request.query_params
        # A signed URL is for a part's PUT or an object's GET here: the dispatcher signs nothing else.
        if refused := self._xml_refusal(request, signed_ok=part_put or request.method == "GET"):
            return refused
        if bucket not in self.objects:
            return xml_error(404, "NoSuchBucket", "The specified bucket does not exist.")
        query = request.query_params
        objects = self.objects[bucket]
        if "uploadId" in query:
            upload = self.uploads.get(query["uploadId"])
            if upload is None or (upload.bucket, upload.key) != (bucket, key):
                return xml_error(404, "NoSuchUpload", "The requested upload was not found.")
            if part_put:
                return await self._put_part(request, upload)
            if signed:
                return xml_error(403, "AccessDenied", "Access denied.")
            if request.method == "GET":
                return self._list_parts(upload, int(query.get("part-number-marker") or 0))
            if request.method == "DELETE":
                del self.uploads[query["uploadId"]]
                return Response(status_code=204)
            if request.method == "POST":
                return self._complete(query["uploadId"], upload, await request.body())
            return xml_error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
        if request.method == "POST" and "uploads" in query:
            upload_id = "ABPnzm" + uuid.uuid4().hex
            self.uploads[upload_id] = Upload(bucket, key, request.headers.get("content-type",
                                                                              "application/octet-stream"), time.time(),
                                             metadata=_metadata(request))
            self.most_uploads_open = max(self.most_uploads_open, len(self.uploads))
            return _xml(f'<InitiateMultipartUploadResult xmlns="{S3_NS}"><Bucket>{bucket}</Bucket><Key>{key}</Key>'
                        f"<UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>")
        if request.method == "PUT":
            if (held := objects.get(key)) is not None and held.temporary_hold:
                return xml_error(403, "AccessDenied", "Access denied.", self._hold_message(bucket, key))
            if request.headers.get("x-goog-if-generation-match") == "0" and key in objects:  # create only
                return xml_error(412, "PreconditionFailed", "At least one of the pre-conditions you specified "
                                 "did not hold.")
            objects[key] = Stored(await request.body(), request.headers.get("content-type", "application/octet-stream"),
                                  metadata=_metadata(request))
            return Response(status_code=200, headers={"ETag": _etag(objects[key].data)})
        if request.method in ("GET", "HEAD"):
            stored = objects.get(key)
            if stored is None:
                return xml_error(404, "NoSuchKey", "The specified key does not exist.")
            headers = {"Content-Type": stored.content_type, "ETag": _etag(stored.data),
                       "x-goog-stored-content-length": str(len(stored.data)), **stored.metadata}
            if request.method == "HEAD":
                return Response(status_code=200, headers={**headers, "Content-Length": str(len(stored.data))})
            ranged = request.headers.get("range", "")
            if ranged.startswith("bytes="):
                start, _, end = ranged.removeprefix("bytes=").partition("-")
                last = min(int(end) if end else len(stored.data) - 1, len(stored.data) - 1)
                return Response(stored.data[int(start):last + 1], status_code=206, headers=headers)
            return Response(stored.data, headers=headers)
        return xml_error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")

    async def _put_part(self, request: Request, upload: Upload) -> Response:
        try:
            number = int(request.query_params.get("partNumber", ""))
        except ValueError:
            number = 0
        if not 1 <= number <= MAX_PART_NUMBER:
            return xml_error(400, "InvalidArgument", "Invalid argument.",
                             f"partNumber must be an integer from 1 to {MAX_PART_NUMBER}")
        data = await request.body()
        if len(data) > MAX_PART:
            return xml_error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
        upload.parts[number] = (data, _etag(data))  # a part put again replaces the earlier one
        return Response(status_code=200, headers={"ETag": _etag(data)})

    def _list_parts(self, upload: Upload, marker: int) -> Response:
        numbers = [n for n in sorted(upload.parts) if n > marker]
        page, truncated = numbers[:self.page_size], len(numbers) > self.page_size
        rows = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{upload.parts[n][1]}</ETag>"
                       f"<Size>{len(upload.parts[n][0])}</Size></Part>" for n in page)
        more = f"<NextPartNumberMarker>{page[-1]}</NextPartNumberMarker>" if truncated else ""
        return _xml(f'<ListPartsResult xmlns="{S3_NS}"><Key>{upload.key}</Key>'
                    f"<IsTruncated>{str(truncated).lower()}</IsTruncated>{more}{rows}</ListPartsResult>")

    def _complete(self, upload_id: str, upload: Upload, body: bytes) -> Response:
        import xml.etree.ElementTree as ET

        try:
            root = ET.fromstring(body)
            named = [(int(p.findtext("PartNumber") or ""), p.findtext("ETag") or "") for p in root.findall("Part")]
        except (ET.ParseError, ValueError):
            return xml_error(400, "MalformedXML", "The XML you provided was not well-formed.")
        if not named:
            return xml_error(400, "MalformedXML", "The XML you provided was not well-formed.")
        if [n for n, _ in named] != sorted({n for n, _ in named}):
            return xml_error(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
        for number, etag in named:
            if number not in upload.parts or upload.parts[number][1] != etag:
                return xml_error(400, "InvalidPart", "One or more of the specified parts could not be found.")
        if any(len(upload.parts[n][0]) < MIN_PART for n, _ in named[:-1]):
            return xml_error(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed "
                             "object size.")
        objects = self.objects[upload.bucket]
        if (held := objects.get(upload.key)) is not None and held.temporary_hold:
            return xml_error(403, "AccessDenied", "Access denied.", self._hold_message(upload.bucket, upload.key))
        data = b"".join(upload.parts[n][0] for n, _ in named)
        objects[upload.key] = Stored(data, upload.content_type, metadata=upload.metadata)
        del self.uploads[upload_id]
        return _xml(f'<CompleteMultipartUploadResult xmlns="{S3_NS}"><Bucket>{upload.bucket}</Bucket>'
                    f"<Key>{upload.key}</Key><ETag>{_etag(data)}</ETag></CompleteMultipartUploadResult>")

    @staticmethod
    def _hold_message(bucket: str, key: str) -> str:
        return (f"Object '{bucket}/{key}' is under active Temporary hold and cannot be deleted, overwritten or "
                "archived until hold is removed.")

    # --- JSON API ---
    async def json_list(self, request: Request) -> Response:
        if not self._bearer(request):
            return json_error(401, "required", "Anonymous caller does not have storage.objects.list access.")
        bucket = request.path_params["bucket"]
        if bucket not in self.objects:
            return json_error(404, "notFound", "The specified bucket does not exist.")
        prefix = request.query_params.get("prefix", "")
        start = int(base64.b64decode(request.query_params.get("pageToken", "") or b"MA==").decode())
        names = sorted(k for k in self.objects[bucket] if k.startswith(prefix))
        page = names[start:start + self.page_size]
        answer: dict[str, Any] = {"kind": "storage#objects",
                                  "items": [self._resource(bucket, name) for name in page]}
        if start + self.page_size < len(names):
            answer["nextPageToken"] = base64.b64encode(str(start + self.page_size).encode()).decode()
        return JSONResponse(answer)

    def _resource(self, bucket: str, name: str) -> dict[str, Any]:
        stored = self.objects[bucket][name]
        return {"kind": "storage#object", "bucket": bucket, "name": name, "size": str(len(stored.data)),
                "contentType": stored.content_type, "temporaryHold": stored.temporary_hold}

    async def json_object(self, request: Request) -> Response:
        if not self._bearer(request):
            return json_error(401, "required", "Anonymous caller does not have storage.objects access.")
        bucket, name = request.path_params["bucket"], request.path_params["name"]  # decoded once
        stored = self.objects.get(bucket, {}).get(name)
        if stored is None:
            return json_error(404, "notFound", f"No such object: {bucket}/{name}")
        if request.method == "GET":
            return JSONResponse(self._resource(bucket, name))
        if request.method == "DELETE":
            if stored.temporary_hold:
                return json_error(403, "forbidden", self._hold_message(bucket, name))
            del self.objects[bucket][name]
            return Response(status_code=204)
        body = await request.json()
        unknown = set(body) - {"temporaryHold", "eventBasedHold", "metadata", "contentType"}
        if unknown:
            return json_error(400, "invalid", f"Invalid field(s): {', '.join(sorted(unknown))}")
        if "temporaryHold" in body:
            if not isinstance(body["temporaryHold"], bool):
                return json_error(400, "invalid", "Invalid value for temporaryHold")
            stored.temporary_hold = body["temporaryHold"]
        return JSONResponse(self._resource(bucket, name))
