"""Azure Blob user delegation SAS, signed by hand: the destination's parts, the user delegation key
the dispatcher gets with its own Entra token, and one blob's SAS query signed with it.

A user delegation SAS is signed with a key Azure hands the dispatcher's identity (Get User
Delegation Key, at most 7 days), never with the account key: the dispatcher holds no storage
secret, and revoking its identity's role revokes every SAS it signed. The string to sign is the
one of versions 2020-12-06 to before 2025-07-05 ("Create a user delegation SAS", learn.microsoft.com
/rest/api/storageservices/create-user-delegation-sas); azure-storage-blob's `generate_blob_sas`
signs the same string. azurite checks the signature as Azure does (tests/dispatcher/artifacts/test_azure_store.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from dispatcher.settings import SettingsError

SAS_VERSION = "2023-11-03"  # also every request's x-ms-version; azurite 3.35 knows it


@dataclass(frozen=True)
class Destination:
    base: str  # https://acct.blob.core.windows.net, or http://127.0.0.1:10000/acct (path-style)
    account: str
    container: str
    prefix: str


def is_azure_destination(destination: str) -> bool:
    return destination.startswith(("https://", "http://"))


def split_destination(destination: str) -> Destination:
    """`https://<account>.blob.core.windows.net/<container>/<prefix>` or the path-style
    `http(s)://<host>/<account>/<container>/<prefix>`; a SettingsError names the form when neither."""
    url = urlsplit(destination)
    host = url.hostname or ""
    segments = [s for s in url.path.split("/") if s]
    # Azure's clouds and Azure Stack Hub name the account in the host (`<account>.blob.<endpoint>`);
    # an emulator is reached by address or by a bare name (`azurite` in a compose file).
    virtual_host = ".blob." in host
    path_style = not virtual_host and (_is_address(host) or host == "localhost" or "." not in host)
    if path_style:
        account, segments = (segments[0], segments[1:]) if segments else ("", [])
    else:
        account = host.split(".", 1)[0] if virtual_host else ""
    if not account or not segments or url.query or url.fragment:
        raise SettingsError(f"RECORDING_DESTINATION={destination!r}: an Azure Blob destination is "
                            "https://<account>.blob.core.windows.net/<container>/<prefix> (or, for an emulator, "
                            "http://<host>:<port>/<account>/<container>/<prefix>)")
    if virtual_host and url.scheme != "https":
        # The dispatcher's bearer token and every SAS it signs would cross the network in the clear.
        raise SettingsError(f"RECORDING_DESTINATION={destination!r}: an Azure storage account is reached over "
                            "HTTPS only: write https://<account>.blob.core.windows.net/<container>/<prefix>")
    base = f"{url.scheme}://{url.netloc}" + ("" if virtual_host else f"/{account}")
    return Destination(base, account, segments[0], "/".join(segments[1:]))


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class DelegationKey:
    """Get User Delegation Key's answer: what a SAS names (`skoid` …) and the key that signs it."""

    object_id: str
    tenant_id: str
    starts: str
    expires: str
    service: str
    version: str
    value: bytes
    expires_at: float  # epoch seconds

    @classmethod
    def from_xml(cls, body: bytes) -> DelegationKey:
        root = ElementTree.fromstring(body)  # noqa: S314 - the storage service's own answer, over TLS

        def field(name: str) -> str:
            found = root.findtext(name)
            if not found:
                raise ValueError(f"no {name} in the user delegation key")
            return found

        expires = field("SignedExpiry")
        return cls(field("SignedOid"), field("SignedTid"), field("SignedStart"), expires, field("SignedService"),
                   field("SignedVersion"), base64.b64decode(field("Value")), parse_time(expires))


def format_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def parse_time(text: str) -> float:
    import calendar

    return float(calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")))


def key_request(starts: float, expires: float) -> bytes:
    """Get User Delegation Key's body."""
    return (f"<?xml version=\"1.0\" encoding=\"utf-8\"?><KeyInfo><Start>{format_time(starts)}</Start>"
            f"<Expiry>{format_time(expires)}</Expiry></KeyInfo>").encode()


def blob_sas(key: DelegationKey, place: Destination, blob: str, permissions: str, expires_at: float,
             https_only: bool) -> str:
    """The query of a SAS for one blob (`sr=b`), with `permissions`, until `expires_at`. No start time:
    it is valid at once, whatever the skew between this clock and Azure's."""
    expiry = format_time(expires_at)
    protocol = "https" if https_only else ""
    to_sign = "\n".join([
        permissions, "", expiry, f"/blob/{place.account}/{place.container}/{blob}",
        key.object_id, key.tenant_id, key.starts, key.expires, key.service, key.version,
        "", "", "",  # the authorized and unauthorized user's object ids, the correlation id: none
        "", protocol, SAS_VERSION, "b", "", "",  # no IP range; the version; a blob; no snapshot, no encryption scope
        "", "", "", "", "",  # no response header overrides
    ])
    signature = base64.b64encode(hmac.new(key.value, to_sign.encode(), hashlib.sha256).digest()).decode()
    query = {"sv": SAS_VERSION, "se": expiry, "sr": "b", "sp": permissions, "skoid": key.object_id,
             "sktid": key.tenant_id, "skt": key.starts, "ske": key.expires, "sks": key.service,
             "skv": key.version}
    if protocol:
        query["spr"] = protocol
    query["sig"] = signature
    return urlencode(query, quote_via=quote)
