"""A minimal TURN client over UDP (RFC 8656 long-term credentials), for tests against coturn.

One `TurnClient` is one 5-tuple (its own UDP socket), so it holds at most one allocation, as a
browser's candidate does. It answers `401`/`438` challenges the way a client must (take the
realm and nonce, sign again) and reports the server's final answer's error code, or 0 for
success. STUN messages are built and parsed with aioice's `stun` module (what aiortc uses).
"""

from __future__ import annotations

import hashlib
import socket

from aioice import stun

REQUESTED_TRANSPORT_UDP = 17 << 24


class TurnClient:
    def __init__(self, server: tuple[str, int], username: str, password: str, timeout: float = 5.0) -> None:
        self.server = server
        self.username = username
        self.password = password
        self.realm: str | None = None
        self.nonce: bytes | None = None
        self.lifetime: int | None = None  # the server's LIFETIME in its last success answer
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.settimeout(timeout)
        self.socket.bind(("127.0.0.1" if server[0].startswith("127.") else "0.0.0.0", 0))

    def allocate(self, lifetime: int = 600) -> int:
        return self._request(stun.Method.ALLOCATE, {"LIFETIME": lifetime,
                                                    "REQUESTED-TRANSPORT": REQUESTED_TRANSPORT_UDP})

    def refresh(self, lifetime: int = 600) -> int:
        """0: the allocation lives `lifetime` more seconds (0 ends it); else the error code."""
        return self._request(stun.Method.REFRESH, {"LIFETIME": lifetime})

    def close(self) -> None:
        self.socket.close()

    def _request(self, method: stun.Method, attributes: dict[str, object]) -> int:
        for _ in range(3):  # the first challenge (401 with realm and nonce), then one stale nonce (438)
            request = stun.Message(message_method=method, message_class=stun.Class.REQUEST)
            request.attributes.update(attributes)
            if self.realm is not None and self.nonce is not None:
                request.attributes["USERNAME"] = self.username
                request.attributes["REALM"] = self.realm
                request.attributes["NONCE"] = self.nonce
                key = hashlib.md5(f"{self.username}:{self.realm}:{self.password}".encode()).digest()  # noqa: S324
                request.add_message_integrity(key)
            else:
                request.add_fingerprint()
            answer = self._exchange(request)
            if answer.message_class == stun.Class.RESPONSE:
                self.lifetime = answer.attributes.get("LIFETIME")
                return 0
            code = answer.error_code or 0
            challenged = code == 438 or (code == 401 and "USERNAME" not in request.attributes)
            if not challenged or "NONCE" not in answer.attributes:
                return code
            self.realm = answer.attributes.get("REALM", self.realm)
            self.nonce = answer.attributes["NONCE"]
        return code

    def _exchange(self, request: stun.Message) -> stun.Message:
        data = bytes(request)
        for _ in range(5):  # UDP: a lost datagram is sent again
            self.socket.sendto(data, self.server)
            try:
                while True:
                    answer = stun.parse_message(self.socket.recv(4096))
                    if answer.transaction_id == request.transaction_id:
                        return answer
            except TimeoutError:
                continue
        raise TimeoutError(f"no TURN answer from {self.server}")
