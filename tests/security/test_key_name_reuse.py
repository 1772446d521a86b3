"""Finding: `keys create NAME` without `--another` refused only a runtime name used in its own
region. A name retired from DISPATCHER_API_KEYS, or used only in another region, went to a new key,
which then read the earlier client's sessions and recordings (a name, not a key, owns them, for
their whole retention). Every named key's use is now recorded in the runtime settings' names ever
used, which travel between regions with the rest: such a create is `409 key_name_used`, naming
`--another`. Real dispatcher processes on real redis-servers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.regions.stored_regions import ADMIN, stored_regions
from tests.regions.test_region_peers import reachable
from tests.support.processes import run_dispatcher
from tests.support.redis_server import RedisServer, redis_server
from tests.support.waiting import wait_until

ADMIN_KEY = "vf-name-reuse-admin-0123456789"
ACME, OTHER = "acme-first-client-key-0123456789", "other-client-key-0123456789ab"
TOKEN = "name-reuse-deployment-secret-0123456789abcdef"
DEADLINE = 60.0


def used_names(store: RedisServer) -> set[str]:
    """The names ever used, as the store's runtime record holds them."""
    redis = store.admin()
    names: set[str] = set()
    for key in redis.keys("*runtime:settings"):  # none before the record's first write
        names |= set(json.loads(redis.hget(key, "record") or "{}").get("entries", {}).get("used", {}))
    return names


def post(url: str, path: str, auth: dict[str, str], **body: Any) -> httpx.Response:
    return httpx.post(url + path, json=body, headers=auth, timeout=DEADLINE)


def refused_then_given(create: Callable[..., httpx.Response]) -> None:
    refused = create(name="acme")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "key_name_used"
    assert "--another" in refused.json()["error"]["message"]
    assert create(name="acme", another=True).status_code == 201  # the same party, asked for as such


def test_a_name_retired_from_the_settings_is_not_given_to_a_new_key_without_another(tmp_path: Path) -> None:
    with redis_server(tmp_path) as store:
        env = {**store.env, "DISPATCHER_ADMIN_KEYS": ADMIN_KEY, "BOT_CHANNEL_TOKEN": TOKEN, "RESERVE_MAX_IDLE": "0"}
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with run_dispatcher(tmp_path, {**env, "DISPATCHER_API_KEYS": f"acme:{ACME},other:{OTHER}"}) as first:
            used = httpx.get(f"{first.base_url}/sessions", headers={"Authorization": f"Bearer {ACME}"},
                             timeout=DEADLINE)
            assert used.status_code == 200, used.text
            wait_until(lambda: "acme" in used_names(store), "acme's use recorded", timeout=DEADLINE, interval=0.1,
                       detail=first.log)
        # Restarted without acme: its sessions and recordings are still the name's.
        with run_dispatcher(tmp_path, {**env, "DISPATCHER_API_KEYS": f"other:{OTHER}"},
                            log_name="again.log") as again:
            refused_then_given(lambda **body: post(again.base_url, "/keys", admin, **body))


def test_a_name_used_only_in_another_region_is_not_given_to_a_new_key_without_another(tmp_path: Path) -> None:
    with stored_regions(tmp_path, ("eu", "us")) as (regions, _stack):
        eu, us = regions["eu"], regions["us"]
        wait_until(lambda: reachable(eu.replicas[0], "us") and reachable(us.replicas[0], "eu"),
                   "each region reaches the other", timeout=DEADLINE)
        made = post(eu.url, "/keys", ADMIN, name="acme")
        assert made.status_code == 201, made.text
        secret = {"Authorization": f"Bearer {made.json()['secret']}"}
        # A session started in us (a listing would ask eu too): the name used there alone.
        wait_until(lambda: post(us.url, "/start", secret, body={}).status_code == 201,
                   "eu's key starts a session in us", timeout=DEADLINE, interval=0.1)
        wait_until(lambda: "acme" in used_names(eu.store), "us's use of acme known in eu", timeout=DEADLINE,
                   interval=0.1, detail=lambda: us.replicas[0].log()[-3000:])
        assert httpx.delete(f"{eu.url}/keys/acme", headers=ADMIN, timeout=DEADLINE).status_code == 204
        refused_then_given(lambda **body: post(eu.url, "/keys", ADMIN, **body))

