"""The edge's second wall on a transfer's target (its control API's `to`): the dispatcher checked it,
and the edge takes nothing that would send the REFER's or the bridged call's request elsewhere."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sipedge.control import TransferAsked


@pytest.mark.parametrize("to", ["+14155550123", "sip:desk@pbx.example.com",
                                "sips:desk@pbx.example.com:5061;transport=TLS",
                                "sip:+14155550123@pbx.example.com;user=phone"])
def test_numbers_and_sip_uris_to_their_own_host_are_taken(to: str) -> None:
    assert TransferAsked(to=to, request_id="r1").to == to


@pytest.mark.parametrize("to", ["sip:desk@pbx.example.com:5099;maddr=127.0.0.1;transport=udp",
                                "sip:desk@pbx.example.com;Maddr=127.0.0.1", "sip:desk@pbx.example.com;method=BYE",
                                "sip:desk@pbx.example.com;lr", "sip:desk@pbx.example.com;x=y"])
def test_a_parameter_that_could_send_the_request_elsewhere_is_refused(to: str) -> None:
    with pytest.raises(ValidationError):
        TransferAsked(to=to, request_id="r1")
