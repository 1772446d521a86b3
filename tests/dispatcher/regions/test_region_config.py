"""REGION, REGIONS and REGION_SECRET: set together or not at all, each mistake named in one line."""

from __future__ import annotations

import pytest

from dispatcher.regions.config import Regions
from dispatcher.settings import SettingsError

SECRET = "s" * 32
EU, US = "https://eu.voice.example.com", "https://us.voice.example.com"


def regions(**env: str) -> Regions:
    return Regions.from_env(env)


def test_unset_is_one_region_with_no_peers() -> None:
    one = regions()
    assert not one.several and one.peers == {}


def test_a_region_knows_every_other_regions_url_by_name() -> None:
    eu = regions(REGION="eu", REGIONS=f"eu={EU}, us={US}/", REGION_SECRET=SECRET)
    assert eu.several and eu.here == "eu"
    assert eu.peers == {"us": US}
    assert eu.listing() == f"eu={EU},us={US}"
    assert eu.listing() == regions(REGION="us", REGIONS=f"us={US},eu={EU}", REGION_SECRET=SECRET).listing()
    assert SECRET not in repr(eu)  # a repr in a log line or a traceback never shows the secret


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REGION": "eu"}, "REGIONS, REGION_SECRET must be set with REGION"),
        ({"REGIONS": f"eu={EU}", "REGION_SECRET": SECRET}, "REGION must be set with REGIONS, REGION_SECRET"),
        ({"REGION": "EU!", "REGIONS": f"eu={EU}", "REGION_SECRET": SECRET}, "REGION='EU!' is not a region name"),
        ({"REGION": "ap", "REGIONS": f"eu={EU},us={US}", "REGION_SECRET": SECRET},
         "REGIONS does not list this region (REGION=ap): list every region, this one included"),
        ({"REGION": "eu", "REGIONS": f"eu={EU},us", "REGION_SECRET": SECRET}, "REGIONS: 'us' is not name=url"),
        ({"REGION": "eu", "REGIONS": f"eu={EU},eu={US}", "REGION_SECRET": SECRET}, "REGIONS names eu twice"),
        ({"REGION": "eu", "REGIONS": f"eu={EU},us={EU}", "REGION_SECRET": SECRET},
         f"REGIONS gives eu and us the same URL {EU}"),
        ({"REGION": "eu", "REGIONS": "eu=http://eu.voice.example.com", "REGION_SECRET": SECRET},
         "must be https"),
        ({"REGION": "eu", "REGIONS": f"eu={EU}/start", "REGION_SECRET": SECRET}, "is not a dispatcher's base URL"),
        ({"REGION": "eu", "REGIONS": f"eu={EU}", "REGION_SECRET": "short"},
         "REGION_SECRET must be at least 32 characters (got 5)"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Regions.from_env(env)
    assert message in str(refused.value)
    assert env.get("REGION_SECRET", "\0") not in str(refused.value)  # its length, never its value


def test_http_is_accepted_on_loopback_only() -> None:
    local = regions(REGION="eu", REGIONS="eu=http://127.0.0.1:8080,us=http://localhost:8081", REGION_SECRET=SECRET)
    assert local.peers == {"us": "http://localhost:8081"}


def test_a_regions_session_ids_name_it_and_stay_24_hex_digits() -> None:
    from dispatcher.sessions.ids import is_session_id, new_session_id, owned_by, region_tag_of

    eu = regions(REGION="eu", REGIONS=f"eu={EU},us={US}", REGION_SECRET=SECRET)
    keyed, random = new_session_id(b"owner", "key-1", "eu"), new_session_id(b"owner", None, "us")
    assert is_session_id(keyed) and is_session_id(random)
    assert eu.by_tag[region_tag_of(keyed)] == "eu" and eu.by_tag[region_tag_of(random)] == "us"
    assert owned_by(keyed, b"owner") and not owned_by(keyed, b"another owner")
    assert new_session_id(b"owner", "key-1", "eu") == keyed  # a retry here finds its session
    assert new_session_id(b"owner", "key-1") != keyed  # one region's ids are as before


def test_the_other_region_holding_a_session_is_read_off_its_id() -> None:
    from dispatcher.sessions.ids import new_session_id

    eu = regions(REGION="eu", REGIONS=f"eu={EU},us={US}", REGION_SECRET=SECRET)
    assert eu.holding(new_session_id(b"owner", None, "us")) == "us"
    assert eu.holding(new_session_id(b"owner", None, "eu")) is None  # this region's own
    assert "0000" not in eu.by_tag and eu.holding("0" * 24) is None  # no region's tag
    assert regions().holding(new_session_id(b"owner", None)) is None  # one region: nothing elsewhere


def test_the_accepted_secret_is_checked_like_the_secret_and_kept_out_of_reprs() -> None:
    base = {"REGION": "eu", "REGIONS": f"eu={EU},us={US}", "REGION_SECRET": SECRET}
    other = "o" * 32
    changing = Regions.from_env({**base, "REGION_ACCEPTED_SECRET": other})
    assert changing.secrets == (SECRET.encode(), other.encode()) and other not in repr(changing)
    assert regions(**base).secrets == (SECRET.encode(),)
    for env, message in [({**base, "REGION_ACCEPTED_SECRET": "short"}, "REGION_ACCEPTED_SECRET must be at least 32"),
                         ({**base, "REGION_ACCEPTED_SECRET": SECRET}, "REGION_ACCEPTED_SECRET is the same as"),
                         ({"REGION_ACCEPTED_SECRET": other}, "REGION_ACCEPTED_SECRET is set but REGION is not")]:
        with pytest.raises(SettingsError) as refused:
            Regions.from_env(env)
        assert message in str(refused.value) and other not in str(refused.value)
