"""Which of a QuotaInfo's dimensionsInfos holds a region's value (stacks/config/cloud_quotas.py): Cloud
Quotas lists them from the most specific dimensions to the least, the last being the project's default."""

from __future__ import annotations

from stacks.config.cloud_quotas import region_value

REGION_OVERRIDE = {"dimensions": {"region": "europe-west1"}, "details": [{"value": "3000"}],
                   "applicable_locations": ["europe-west1"]}
DEFAULT = {"dimensions": {}, "details": [{"value": "24"}], "applicable_locations": ["us-central1", "asia-east1"]}


def test_a_region_named_in_its_own_entry_takes_that_value_and_the_others_the_default() -> None:
    assert region_value([REGION_OVERRIDE, DEFAULT], "europe-west1") == 3000
    assert region_value([REGION_OVERRIDE, DEFAULT], "us-central1") == 24


def test_a_region_no_entry_applies_to_or_an_unlimited_value_reads_as_none() -> None:
    assert region_value([REGION_OVERRIDE, DEFAULT], "me-west1") is None
    assert region_value([{**DEFAULT, "details": [{"value": "-1"}]}], "us-central1") is None
    assert region_value(None, "us-central1") is None  # the offline plan's mocks answer nothing


def test_an_entry_of_another_dimension_than_the_region_is_skipped_for_one_that_names_none() -> None:
    family = {"dimensions": {"region": "us-central1", "vm_family": "N2"}, "details": [{"value": "8"}],
              "applicable_locations": ["us-central1"]}
    assert region_value([family, DEFAULT], "us-central1") == 24
