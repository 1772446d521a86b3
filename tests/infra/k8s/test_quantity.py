"""A quantity as the API server stores it (stacks/k8s/quantity.py): the examples of Kubernetes' own docs
(k8s.io/apimachinery resource.Quantity: "1.5 will be serialized as 1500m, 1.5Gi as 1536Mi")."""

from __future__ import annotations

import pytest

from stacks.k8s.bot_pod_fields import admitted_quantities
from stacks.k8s.quantity import Unconvertible, canonical


@pytest.mark.parametrize(("written", "stored"), [
    ("1", "1"), ("0.5", "500m"), ("1.5", "1500m"), ("1000m", "1"), ("250m", "250m"), ("2000m", "2"), ("0.1", "100m"),
    ("1Gi", "1Gi"), ("1024Mi", "1Gi"), ("1.5Gi", "1536Mi"), ("0.5Gi", "512Mi"), ("2048Mi", "2Gi"), ("1536Mi", "1536Mi"),
    ("0.5Ki", "512"), ("1000Ki", "1000Ki"), ("2000M", "2G"), ("1500M", "1500M"), ("0", "0"), ("0.0000000001", "1n"),
    # Exact: a digit past a 28-digit decimal's precision still rounds up to the next nano, as the API server does.
    ("0.1000000000000000000000000000001", "100000001n"), ("7Ei", "7Ei"), ("9223372036854775807", "9223372036854775807"),
    ("8589934591Gi", "8589934591Gi"),
])
def test_a_quantity_is_admitted_as_the_api_server_stores_it(written: str, stored: str) -> None:
    assert canonical(written) == stored


def test_each_quantity_is_admitted_as_written_and_stored_and_none_that_is_not_one() -> None:
    assert admitted_quantities("0.5", "1", None, "1' || true || '") == ("0.5", "500m", "1")


@pytest.mark.parametrize("written", ["10E", "9Ei", "16Ei", "8Ei", "99999999999999999999Gi", "9223372036854775808",
                                     "1e3"])
def test_a_quantity_it_cannot_write_is_refused_not_rounded(written: str) -> None:
    with pytest.raises(Unconvertible):
        canonical(written)
    assert admitted_quantities(written, "1") == ("1",)  # an output edited by hand is left out
