"""Contexts chosen per command (`--context NAME`) and removed (`context remove NAME`); every command
that goes to a context's dispatcher says which context it used, on stderr (a `--json` answer stays
JSON). Two stand-in dispatchers answering `voicefleet releases` (tests/cli/releases_api.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.releases_api import ADMIN_KEY, Releases, handler
from tests.cli.test_contexts import SECRET, run
from tests.support.threaded_http import serving


def test_a_command_chooses_its_context_and_says_which_it_used(tmp_path: Path) -> None:
    staging, prod = Releases(), Releases()
    with serving(handler(staging)) as staging_url, serving(handler(prod)) as prod_url:
        run(tmp_path, "context", "add", "staging", "--url", staging_url, "--key-env", "VF_STAGING")
        run(tmp_path, "context", "add", "prod", "--url", prod_url, "--key-env", "VF_PROD")
        run(tmp_path, "context", "use", "staging")
        keys = {"VF_STAGING": SECRET, "VF_PROD": ADMIN_KEY}
        chosen = run(tmp_path, "releases", "--context", "prod", "--json", **keys)
        assert chosen.exit_code == 0, chosen.output
        assert f"context: prod ({prod_url})" in chosen.stderr
        json.loads(chosen.stdout)  # the answer alone on stdout
        current = run(tmp_path, "releases", **keys)
        assert f"context: staging ({staging_url})" in current.stderr
    assert prod.authorizations == [f"Bearer {ADMIN_KEY}"]  # --context prod went to prod, with prod's key
    assert staging.authorizations == [f"Bearer {SECRET}"]  # and the one in use is still staging


def test_an_unknown_context_or_one_beside_url_is_refused(tmp_path: Path) -> None:
    run(tmp_path, "context", "add", "prod", "--url", "https://voice.example.com", "--key-env", "VF_PROD")
    unknown = run(tmp_path, "releases", "--context", "prdo")
    assert unknown.exit_code == 2 and "--context prdo: no such context (known: prod)" in unknown.stderr
    both = run(tmp_path, "releases", "--context", "prod", "--url", "https://other.example.com")
    assert both.exit_code == 2 and "give --context prod or --url, not both" in both.stderr


def test_a_context_is_removed_and_the_one_in_use_with_it(tmp_path: Path) -> None:
    run(tmp_path, "context", "add", "prod", "--url", "https://voice.example.com", "--key-env", "VF_PROD")
    run(tmp_path, "context", "add", "staging", "--url", "https://staging.example.com", "--key-env", "VF_STAGING")
    run(tmp_path, "context", "use", "prod")
    removed = run(tmp_path, "context", "remove", "prod")
    assert removed.exit_code == 0, removed.output
    assert "context prod removed; no context is in use now" in removed.stdout
    body = json.loads(run(tmp_path, "context", "list", "--json").stdout)
    assert body == {"current": None, "contexts": {"staging": {"url": "https://staging.example.com",
                                                              "key_env": "VF_STAGING", "role": "admin"}}}
    again = run(tmp_path, "context", "remove", "prod")
    assert again.exit_code == 2 and "no context prod (known: staging)" in again.stderr
