"""Shared test support: an aiortc voice client (webrtc_client) and audio helpers (audio)."""
