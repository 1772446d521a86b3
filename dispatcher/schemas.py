"""Request and response bodies of the HTTP contract (DESIGN.md §3), as the OpenAPI document shows them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class StartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: dict[str, Any] = Field(
        default_factory=dict, description="Passed to the bot as is (at most 4 KB as JSON)."
    )


class SessionOut(BaseModel):
    session_id: str
    status: Literal["starting", "started", "joined", "ended", "failed"]
    created_at: float = Field(description="Epoch seconds when the machine was launched.")
    detail: str | None = Field(default=None, description="Why a session ended or failed.")
    offer_url: str | None = Field(default=None, description="Local: where to POST the WebRTC offer.")
    room_url: str | None = Field(default=None, description="Cloud: the Daily room to join.")


class StartOut(SessionOut):
    token: str | None = Field(default=None, description="Cloud: the user's meeting token (not an owner).")


class Offer(BaseModel):
    """Pipecat SmallWebRTC signalling: an SDP offer, answered with `{sdp, type, pc_id}`."""

    model_config = ConfigDict(extra="allow")

    sdp: str = Field(min_length=1, max_length=60_000)
    type: Literal["offer"]
    pc_id: str | None = Field(default=None, max_length=200)
    restart_pc: bool | None = None


class IceCandidate(BaseModel):
    candidate: str = Field(max_length=2000)
    sdp_mid: str | None = Field(default=None, max_length=200)
    sdp_mline_index: int | None = Field(default=None, ge=0, le=64)


class CandidatesPatch(BaseModel):
    pc_id: str = Field(min_length=1, max_length=200)
    candidates: list[IceCandidate] = Field(max_length=100)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail
