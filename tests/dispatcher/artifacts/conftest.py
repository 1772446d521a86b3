from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.s3_presigned import ACCESS_KEY, SECRET_KEY, s3_server


@pytest.fixture
def s3_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's S3 behind the pre-signed URL check, with its dummy credentials in this process's env."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with s3_server() as url:
        yield url
