"""DAILY_RECORDINGS_BUCKET: the team's S3 bucket Daily's cloud recording writes into, read once.

`bucket=<name>,region=<aws region>,role=<IAM role ARN Daily assumes>`, set on a room as Daily's
`recordings_bucket` (and `transcription_bucket`) object. Daily never keeps the recording on its
own servers then; the bucket must have versioning on (Daily's requirement). `allow_api_access`
stays false: the recording is read from the bucket, not through Daily's API.
"""

from __future__ import annotations

import re
from typing import Any

from dispatcher.settings import SettingsError

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's bucket naming rules
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
_ROLE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
FORMAT = "bucket=<name>,region=<aws region>,role=arn:aws:iam::<account>:role/<name>"


def parse_recordings_bucket(value: str) -> dict[str, Any] | None:
    """Daily's bucket object, or None when unset; a wrong value is a SettingsError naming the format."""
    value = value.strip()
    if not value:
        return None
    fields: dict[str, str] = {}
    for part in value.split(","):
        name, sep, text = part.partition("=")
        if not sep or name.strip() not in ("bucket", "region", "role") or name.strip() in fields:
            raise SettingsError(f"DAILY_RECORDINGS_BUCKET: {part.strip()!r} is not one of {FORMAT}")
        fields[name.strip()] = text.strip()
    for name, pattern in (("bucket", _BUCKET), ("region", _REGION), ("role", _ROLE)):
        if not pattern.fullmatch(fields.get(name, "")):
            raise SettingsError(f"DAILY_RECORDINGS_BUCKET: {name} is missing or malformed; write {FORMAT}")
    return {"bucket_name": fields["bucket"], "bucket_region": fields["region"],
            "assume_role_arn": fields["role"], "allow_api_access": False}
