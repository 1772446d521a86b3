"""A new Cloud Run bot's first dial behind a network that carries nothing for a while
(stacks/config/cloud_run.py `first_dial_seconds`), and the reserve prior built on it."""

from __future__ import annotations

from botchannel.contract import DIAL_TIMEOUT_SECONDS, FIRST_DIAL_DELAYS_SECONDS
from dispatcher.machines import cloudrun
from stacks.config.cloud_run import DIRECT_VPC_NAT_DELAY_SECONDS, cold_start_prior, first_dial_seconds


def test_a_network_that_carries_traffic_at_once_costs_the_first_dial_nothing() -> None:
    assert first_dial_seconds(0.0) == 0.0


def test_refused_dials_get_through_at_the_first_try_after_the_network_is_up() -> None:
    # tries at 0, 1, 3 and 7 s
    assert first_dial_seconds(2.0, delays=(1.0, 2.0, 4.0)) == 3.0
    assert first_dial_seconds(3.0, delays=(1.0, 2.0, 4.0)) == 3.0
    assert first_dial_seconds(7.5, delays=(1.0, 2.0, 4.0)) is None  # the tries ran out first


def test_dropped_dials_each_wait_out_their_deadline_before_the_next_delay() -> None:
    # tries at 0, 10 + 1, 21 + 2 and 33 + 4 s
    assert first_dial_seconds(12.0, failed_dial_seconds=10.0, delays=(1.0, 2.0, 4.0)) == 23.0
    assert first_dial_seconds(30.0, failed_dial_seconds=10.0, delays=(1.0, 2.0, 4.0)) == 37.0


def test_the_bots_own_tries_outlast_googles_documented_delay_behind_cloud_nat() -> None:
    for failed in (0.0, DIAL_TIMEOUT_SECONDS):
        wait = first_dial_seconds(DIRECT_VPC_NAT_DELAY_SECONDS, failed_dial_seconds=failed)
        assert wait is not None and DIRECT_VPC_NAT_DELAY_SECONDS <= wait < sum(FIRST_DIAL_DELAYS_SECONDS)


def test_the_prior_is_cloud_runs_start_and_the_nat_wait_on_top() -> None:
    assert cold_start_prior(direct_vpc_nat=False) == cloudrun.COLD_START.median_seconds
    wait = first_dial_seconds(DIRECT_VPC_NAT_DELAY_SECONDS, failed_dial_seconds=DIAL_TIMEOUT_SECONDS)
    assert wait is not None
    assert cold_start_prior(direct_vpc_nat=True) == cloudrun.COLD_START.median_seconds + wait
