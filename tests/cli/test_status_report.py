"""`voicefleet status`'s table for a body no local dispatcher answers: a cloud region with peers, a
price, a store that does not answer and refusals by code (the route's own shape: docs/http-api.md)."""

from __future__ import annotations

from voicefleet.status import report

BODY = {
    "at": 1795624828.0, "region": "eu-west", "replica": "7f3c2a", "provider": "ecs",
    "sessions": {"running": 3, "by_status": {"joined": 2, "started": 1}, "by_release": {"r-1": 3},
                 "by_region": {"eu-west": 3}},
    "reserve": {"enabled": True, "total": 2, "by_state": {"idle": 2, "warming": 0, "frozen": 0, "resuming": 0},
                "by_release": {"r-1": 2}, "by_region": {"eu-west": 2, "us-east": 5},
                "problem": "the store does not answer: the reserve shown is this replica's own"},
    "starts": {"1m": {"starts": 2, "refused": 1, "refusals": {"at_capacity": 1}},
               "5m": {"starts": 9, "refused": 3, "refusals": {"at_capacity": 2, "key_at_capacity": 1}}},
    "cost": {"dollars_per_hour": 0.2469, "running_machines": 5, "frozen_machines": 0},
    "replicas": [{"id": "7f3c2a", "sessions": 3, "reserve": 2}],
    "regions": [{"name": "eu-west", "here": True, "reachable": True, "reserve": 2},
                {"name": "us-east", "here": False, "reachable": False, "reserve": None}],
}


def test_a_cloud_regions_status_reads_as_a_person_would_read_it() -> None:
    lines = [line.split() for line in report(BODY).splitlines()]
    assert lines[0] == ["region", "eu-west", "·", "replica", "7f3c2a", "·", "ecs", "·", "2026-11-25", "16:40:28Z"]
    assert ["SESSIONS", "3", "running"] in lines and ["status", "joined", "2"] in lines
    assert ["region", "us-east", "5"] in lines  # a peer's reserve, as it last advertised it
    assert ["the", "store", "does", "not", "answer:"] == next(line for line in lines if "store" in line)[:5]
    assert ["5m", "9", "3", "at_capacity=2,key_at_capacity=1"] in lines
    assert ["COST", "$0.2469", "an", "hour:", "5", "running,", "0", "frozen", "machines"] in lines
    assert ["region", "us-east", "-", "unreachable"] in lines


def test_no_reserve_and_no_price_are_said() -> None:
    body = {**BODY, "region": "default", "reserve": {**BODY["reserve"], "enabled": False, "problem": None},
            "cost": {"dollars_per_hour": None, "running_machines": 3, "frozen_machines": 0,
                     "note": "not priced for this provider"}}
    text = report(body)
    assert text.splitlines()[0].startswith("one region · replica 7f3c2a")
    assert "RESERVE  2 bots (no reserve: every start is cold)" in text
    assert "COST  not priced: 3 running, 0 frozen machines; not priced for this provider" in text


def test_a_recordings_store_it_cannot_write_is_said() -> None:
    body = {**BODY, "recordings": {"policy": "on", "destination": "s3://calls/voice",
                                   "error": "s3://calls: cannot write: AccessDenied"}}
    text = report(body)
    assert "RECORDINGS  on → s3://calls/voice" in text
    assert "  not kept, calls run unrecorded: s3://calls: cannot write: AccessDenied" in text
    assert "RECORDINGS  off" in report({**BODY, "recordings": {"policy": "off", "destination": "recordings"}})


def test_each_capacity_value_is_shown_beside_what_is_in_use() -> None:
    capacity = {"version": 1, "values": {
        "sessions": {"value": 200, "setting": 50, "runtime": 200, "in_use": 37},
        "key.acme": {"value": 0.5, "setting": 0.5, "runtime": None, "in_use": None}}}
    lines = [line.split() for line in report({**BODY, "capacity": capacity}).splitlines()]
    assert ["NAME", "VALUE", "SETTING", "RUNTIME", "IN", "USE"] in lines
    assert ["sessions", "200", "50", "200", "37"] in lines
    assert ["key.acme", "0.5", "0.5", "-", "-"] in lines
    assert not any(line and line[0] == "CAPACITY" for line in (x.split() for x in report(BODY).splitlines()))


def test_each_sip_edge_is_one_line_and_one_not_answering_says_why() -> None:
    edges = [
        {"url": "http://10.0.0.5:5080", "answering": True, "ready": True, "version": "sipedge-0123456789ab",
         "calls": {"in_progress": 3, "free": 51, "total": 54}, "refused_last_minute": 0,
         "trunks": [{"name": "twilio", "registration": "registered", "code": 200, "reason": "OK"},
                    {"name": "telnyx", "registration": "not_registering"}]},
        {"url": "http://10.0.0.6:5080", "answering": True, "ready": True, "refused_last_minute": 12,
         "calls": {"in_progress": 0, "free": 3, "total": 3},
         "trunks": [{"name": "pbx", "registration": "refused", "code": 403, "reason": "Forbidden"},
                    {"name": "pbx6", "registration": "failed", "status": 171060,
                     "reason": "Unsupported transport (PJSIP_EUNSUPTRANSPORT)"}]},
        {"url": "http://10.0.0.7:5080", "answering": False,
         "error": "not answering: connection refused: nothing listens there (ClientConnectorError)"},
    ]
    lines = report({**BODY, "sip_edges": edges}).splitlines()
    assert "SIP EDGES  2 of 3 answering" in lines
    assert "  sip edge http://10.0.0.5:5080  answering  3/54 calls  trunk twilio registered" in lines
    assert ("  sip edge http://10.0.0.6:5080  answering  0/3 calls  trunk pbx refused 403 Forbidden  "
            "trunk pbx6 failed: Unsupported transport (PJSIP_EUNSUPTRANSPORT)  12 refused in the last minute") in lines
    assert ("  sip edge http://10.0.0.7:5080  not answering: connection refused: nothing listens there "
            "(ClientConnectorError)") in lines
    assert not any("SIP EDGES" in line for line in report(BODY).splitlines())  # no SIP_EDGE_URL: no part


def test_a_draining_sip_edge_says_it_takes_no_new_call() -> None:
    edge = {"url": "http://10.0.0.5:5080", "answering": True, "ready": True, "draining": True,
            "calls": {"in_progress": 2, "free": 52, "total": 54}, "trunks": [], "refused_last_minute": 0}
    lines = report({**BODY, "sip_edges": [edge]}).splitlines()
    assert "  sip edge http://10.0.0.5:5080  answering  2/54 calls  draining: takes no new call" in lines
