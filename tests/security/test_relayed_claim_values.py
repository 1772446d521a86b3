"""Finding: the replica holding a warm bot read a relayed claim's launch values with `int()` alone, so a
claim whose session length was infinite raised an uncaught OverflowError (a 500, not a 400), and a
claim from a replica of an older version, which sends no release, was refused (400) during a rolling
upgrade. Now the first is a 400 naming the problem and the second is the default release's."""

from __future__ import annotations

import math
from typing import Any

import pytest

from dispatcher.errors import ApiError
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.reserve.elsewhere import spec_from


def claim(**changed: Any) -> dict[str, Any]:
    return {"session_id": "s-1", "body_digest": "d" * 64, "max_session_seconds": 600, "release": "blue",
            **changed}


def test_an_infinite_session_length_is_a_400_not_a_500() -> None:
    with pytest.raises(ApiError) as refused:
        spec_from("s-1", claim(max_session_seconds=math.inf))
    assert refused.value.status == 400 and refused.value.code == "invalid_request"


def test_a_claim_from_an_older_replica_without_a_release_is_the_default_releases() -> None:
    older = claim()
    del older["release"]
    assert spec_from("s-1", older).release == DEFAULT_RELEASE
    assert spec_from("s-1", claim()).release == "blue"
