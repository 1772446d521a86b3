"""A Kubernetes bot's price (dispatcher/reserve/prices.py): Kubernetes has no list price, so a pod is priced
at its requests × its node's price per vCPU-hour and GiB-hour, by default a GKE Standard E2 node's, and a
session's cost and GET /status read that one price."""

from __future__ import annotations

import pytest

from dispatcher.machines.k8s.provider import K8sMachines
from dispatcher.machines.k8s.settings import quantity
from dispatcher.reserve.prices import E2, HOURS_PER_MONTH, bot_price
from dispatcher.sessions.cost import SessionCosts
from dispatcher.settings import SettingsError
from tests.fakes.k8s import NAMESPACE

BASE = {"MACHINES": "k8s", "K8S_NAMESPACE": NAMESPACE, "K8S_API_URL": "http://127.0.0.1:9",
        "BOT_IMAGE": "registry.example/bot:1", "K8S_TOKEN_FILE": "/nonexistent"}


def machines(**env: str) -> K8sMachines:
    return K8sMachines.from_env({**BASE, **env})


def test_quantities_read_as_the_api_server_reads_them() -> None:
    assert (quantity("500m"), quantity("2"), quantity("1.5")) == (0.5, 2.0, 1.5)
    assert (quantity("1Gi"), quantity("512Mi"), quantity("2G")) == (2**30, 2**29, 2e9)


def test_a_pod_is_priced_at_its_requests_times_a_gke_e2_nodes_prices_by_default() -> None:
    env = {"K8S_BOT_CPU": "500m", "K8S_BOT_MEMORY": "2Gi"}
    price = bot_price(machines(**env), env)
    assert price is not None
    assert price.dollars_per_month == round((0.5 * E2.vcpu_hour + 2 * E2.gb_hour) * HOURS_PER_MONTH, 2) > 0
    assert price.size == "500m CPU, 2Gi requested" and "GKE Standard E2" in price.source


def test_the_nodes_prices_are_the_deployments_to_set() -> None:
    env = {"K8S_NODE_VCPU_HOUR_DOLLARS": "0.04", "K8S_NODE_GB_HOUR_DOLLARS": "0.005"}
    price = bot_price(machines(), env)  # the default pod: 1 CPU, 1Gi
    assert price is not None and price.dollars_per_month == round((0.04 + 0.005) * HOURS_PER_MONTH, 2)
    assert "K8S_NODE_VCPU_HOUR_DOLLARS" in price.source
    with pytest.raises(SettingsError, match="K8S_NODE_GB_HOUR_DOLLARS"):
        bot_price(machines(), {"K8S_NODE_GB_HOUR_DOLLARS": "cheap"})
    override = bot_price(machines(), {**env, "RESERVE_HOT_DOLLARS_PER_MONTH": "12"})
    assert override is not None and override.dollars_per_month == 12  # the one override of every provider's


def test_a_k8s_sessions_cost_is_its_seconds_at_that_price() -> None:
    price = bot_price(machines(), {})
    assert price is not None
    events = [{"event": "requested", "at": 100.0}, {"event": "launched", "at": 100.5},
              {"event": "ended", "at": 400.5}]
    cost = SessionCosts("k8s", price).of(events, running=False)
    assert cost is not None and cost.session_seconds == 300.0
    assert cost.total == pytest.approx(300 * price.dollars_per_second) and cost.total > 0
