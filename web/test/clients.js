// The official Pipecat clients, unmodified, exposed to the browser tests' page.
export { PipecatClient, makeRequest } from "@pipecat-ai/client-js";
export { SmallWebRTCTransport, WavMediaManager } from "@pipecat-ai/small-webrtc-transport";
export { DailyTransport } from "@pipecat-ai/daily-transport";
export { default as Daily } from "@daily-co/daily-js";
export {
  WebSocketTransport, ProtobufFrameSerializer, WavMediaManager as WebSocketWavMediaManager,
} from "@pipecat-ai/websocket-transport";
