"""PJSIP's forced end of an INVITE session (`pjsip_inv_terminate`), which PJSUA2 does not expose, called
through ctypes on the wheel's own library (it exports PJSIP's symbols). PJSUA2's hang-up of a call whose
`200 OK` no ACK confirmed sends its BYE, but PJSUA keeps the call's slot until that BYE is answered or its
32 s run out, and a trunk that never saw the call answers nothing. Terminated, the session ends at once:
PJSIP stops sending the 200 and sends its BYE (whose answer no longer holds anything), and PJSUA reports the
call disconnected and frees its slot.

The session is found by its dialog, read off a transaction of the call as PJSUA2 tells it (onCallTsxState:
`pjsip_tsx_get_dlg`; the INVITE that PJSUA hands the edge is a copy that names none). A dialog lives at least
as long as its session is not disconnected, and PJSUA tells the call ended (SipCall.ended) before then: the
dialog is used only while the call has not ended, on the SIP thread."""

from __future__ import annotations

import ctypes
import importlib

import pjsua2 as pj

_PJSIP = ctypes.CDLL(importlib.import_module("pjsua2._pjsua2").__file__)  # the loaded library, not a second copy
_PJSIP.pjsip_tsx_get_dlg.restype = ctypes.c_void_p
_PJSIP.pjsip_tsx_get_dlg.argtypes = [ctypes.c_void_p]
_PJSIP.pjsip_dlg_get_inv_session.restype = ctypes.c_void_p
_PJSIP.pjsip_dlg_get_inv_session.argtypes = [ctypes.c_void_p]
_PJSIP.pjsip_inv_terminate.restype = ctypes.c_int  # pj_status_t: 0 is PJ_SUCCESS
_PJSIP.pjsip_inv_terminate.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]  # session, status, notify


def dialog_of(transaction: pj.SipTransaction) -> int | None:
    """The dialog (its address) of a transaction PJSUA2 tells, inside the callback that tells it."""
    if transaction is None or transaction.pjTransaction is None:
        return None
    dialog: int | None = _PJSIP.pjsip_tsx_get_dlg(int(transaction.pjTransaction))
    return dialog


def terminate(dialog: int, status: int) -> bool:
    """Ends the dialog's INVITE session now, as `status`, told to PJSUA (its call's onCallState); on the SIP
    thread, while the call has not ended. Whether PJSIP took it."""
    session = _PJSIP.pjsip_dlg_get_inv_session(dialog)
    return session is not None and _PJSIP.pjsip_inv_terminate(session, status, 1) == 0
