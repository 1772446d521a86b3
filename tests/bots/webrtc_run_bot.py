"""A script in pipecat-examples' whatsapp shape: its own server answers the WebRTC offer and awaits
`run_bot(webrtc_connection)`, which builds its SmallWebRTC transport from that connection; no
`bot(runner_args)`. It greets with a tone and plays back what it hears."""

from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from testbot_kit import Echo, run_pipeline, tone


async def run_bot(webrtc_connection: SmallWebRTCConnection, greeting_hz: float = 440.0) -> None:
    transport = SmallWebRTCTransport(
        webrtc_connection=webrtc_connection,
        params=TransportParams(audio_in_enabled=True, audio_out_enabled=True),
    )
    await run_pipeline(transport, None, [Echo()], greeting=tone(greeting_hz))
