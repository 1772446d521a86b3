"""A trunk's registration as the edge keeps it (sipedge/registrations.py): PJSUA both reports some failures
(`onRegState`) and raises them from `Account.setRegistration` (a registrar whose name does not resolve: 502,
then `PJ_ERESOLVE` raised); the answer reported stands, and a failure raised alone reads `failed`."""

from __future__ import annotations

from sipedge.registrations import Registration, Registrations


def test_a_failure_pjsua_raised_alone_reads_failed_with_its_status() -> None:
    registrations = Registrations()
    registrations.gave_up("pbx", 171060, "Unsupported transport (PJSIP_EUNSUPTRANSPORT)")
    assert registrations.of("pbx") == Registration("failed", None, "Unsupported transport (PJSIP_EUNSUPTRANSPORT)",
                                                   171060)


def test_an_answer_pjsua_reported_stands_when_it_raises_the_same_failure() -> None:
    registrations = Registrations()
    registrations.answered("pbx", 502, "gethostbyname() has returned error (PJ_ERESOLVE)", 300)
    registrations.gave_up("pbx", 70018, "gethostbyname() has returned error (PJ_ERESOLVE)")
    assert registrations.of("pbx").state == "refused" and registrations.of("pbx").code == 502
