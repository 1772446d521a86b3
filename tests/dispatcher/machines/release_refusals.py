"""What every cloud provider's tests check of a release whose image the provider does not have."""

from __future__ import annotations

from collections.abc import Awaitable

import pytest

from dispatcher.errors import ApiError
from dispatcher.machines.releases import ReleaseImageMissing
from dispatcher.outbound.provider_errors import as_api_error


async def refused_naming(release: str, launch: Awaitable[object]) -> ApiError:
    """`launch` fails `release_image_missing` naming `release`, to the log and to the caller (a
    502, not a 500); the caller's answer, for what it must not say."""
    with pytest.raises(ReleaseImageMissing) as caught:
        await launch
    assert caught.value.reason == "release_image_missing" and repr(release) in caught.value.message
    answer = as_api_error(caught.value)
    assert (answer.status, answer.code) == (502, "release_image_missing") and repr(release) in answer.message
    return answer
