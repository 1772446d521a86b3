"""An edge's two parts run apart (sipedge/edge_part.py): which part a command names, the tokens both parts must
hold, the front's load that holds the inbound passwords alone, and the front's view of its workers' ports."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest

from sipedge.config import ConfigError, load
from sipedge.edge_part import DRAIN_TOKEN_VARIABLE, Part, part_of, shared_tokens
from sipedge.worker_place import CALL_TOKEN_VARIABLE, TOKEN_VARIABLE, new_token
from sipedge.worker_ports import bound_worker_ports
from tests.sip.test_front_parts import EDGE, edge

KEYED = 'numbers = { "+14155550199" = "TEAM_KEY" }\ndigest_username = "edge"\ndigest_password_env = "OUTBOUND"\n'
INBOUND = 'inbound_digest_username = "pbx"\ninbound_digest_password_env = "PBX_PASSWORD"\n'


def test_a_command_names_the_whole_edge_or_one_of_its_parts() -> None:
    assert [part_of(a) for a in ([], ["front"], ["workers"])] == [Part.WHOLE, Part.FRONT, Part.WORKERS]
    with pytest.raises(ConfigError, match="`python -m sipedge front` and `python -m sipedge workers`"):
        part_of(["kamailio"])


def test_each_part_needs_the_three_tokens_both_hold() -> None:
    tokens = {TOKEN_VARIABLE: new_token(), CALL_TOKEN_VARIABLE: new_token(), DRAIN_TOKEN_VARIABLE: new_token()}
    held = shared_tokens(tokens)
    assert (held.front, held.call, held.drain) == tuple(tokens.values())
    assert tokens[TOKEN_VARIABLE] not in repr(held)
    for variable in tokens:
        with pytest.raises(ConfigError, match=f"{variable} is unset or shorter than 32"):
            shared_tokens({**tokens, variable: "short"})


def _file(tmp_path: Path, trunk: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(EDGE.format(extra="workers = 2", trunk=trunk).replace(
        'numbers = { "+14155550199" = "" }\n', ""))
    return path


def test_the_front_loads_its_file_with_the_inbound_passwords_alone(tmp_path: Path) -> None:
    path = _file(tmp_path, KEYED + INBOUND)
    front_env = {"SIP_EDGE_CONFIG": str(path), "PBX_PASSWORD": "p" * 24}
    with pytest.raises(ConfigError, match="TEAM_KEY is unset"):  # the whole edge's load needs every secret
        load(front_env)
    config = load(front_env, other_secrets=False)
    (trunk,) = config.trunks
    assert trunk.api_keys == {"+14155550199": None} and trunk.digest_password is None
    assert trunk.inbound_digest is not None and config.control_secret is None
    with pytest.raises(ConfigError, match="PBX_PASSWORD is unset"):  # its own it still checks
        load({"SIP_EDGE_CONFIG": str(path)}, other_secrets=False)


def test_the_front_sees_which_of_its_workers_sip_ports_are_bound(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as worker:
        worker.bind(("127.0.0.1", 0))
        port = worker.getsockname()[1]
        config = dataclasses.replace(edge(tmp_path, "workers = 2"), worker_sip_port=port, workers=1)
        assert bound_worker_ports(config) == {port}
    assert bound_worker_ports(config) == set()
