"""A SmallWebRTC peer connection that honours `iceTransportPolicy` (Pipecat 1.14 sets none).

With the relay policy the bot gathers only relay candidates from its TURN server: its own
addresses never reach the client, and media flows through the relay whether or not anything
could reach the bot directly (it accepts no inbound traffic; docs/design.md §1).
"""

from __future__ import annotations

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceTransportPolicy
from pipecat.transports.smallwebrtc.connection import IceServer, SmallWebRTCConnection

from bot.ice import IceSettings

# aiortc keeps the configuration under this (name-mangled) attribute and reads the policy only
# when it gathers candidates, i.e. in setLocalDescription after an offer arrived.
_CONFIGURATION_ATTRIBUTE = "_RTCPeerConnection__configuration"


class PolicyConnection(SmallWebRTCConnection):
    def __init__(self, ice_servers: list[IceServer], *, relay_only: bool) -> None:
        self._relay_only = relay_only  # read by _initialize, which the base constructor calls
        super().__init__(ice_servers=ice_servers)

    def _initialize(self) -> None:  # also called again by renegotiate(restart_pc=True)
        super()._initialize()
        if not self._relay_only:
            return
        if not hasattr(self._pc, _CONFIGURATION_ATTRIBUTE):
            raise RuntimeError("aiortc's RTCPeerConnection changed: cannot set the relay-only ICE policy")
        setattr(
            self._pc,
            _CONFIGURATION_ATTRIBUTE,
            RTCConfiguration(
                iceServers=self.ice_servers,
                iceTransportPolicy=RTCIceTransportPolicy.RELAY,
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,  # as Pipecat's own configuration
            ),
        )


def ice_servers(settings: IceSettings) -> list[IceServer]:
    return [
        IceServer(urls=list(server.urls), username=server.username, credential=server.credential)
        for server in settings.servers
    ]


def new_connection(settings: IceSettings) -> SmallWebRTCConnection:
    return PolicyConnection(ice_servers(settings), relay_only=settings.relay_only)
