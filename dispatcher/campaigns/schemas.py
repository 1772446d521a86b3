"""`POST /campaigns`' shapes (docs/phone.md#campaigns): the rows to call, how (the call's `from`, its carrier
or trunk, voicemail choice, as `POST /calls` takes them), how many at once, how fast, and which outcomes are
tried again, when and how often."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dispatcher.api.call_schemas import E164

MAX_ROWS = 100_000  # rows in one campaign, all requests together
MAX_CONCURRENCY = 1000
MAX_PACE = 1000.0  # calls started a second (the carrier's or trunk's own pace bounds it lower)
RETRYABLE = ("busy", "no_answer", "failed", "canceled", "voicemail", "rejected", "not_placed")
MAX_ATTEMPTS = 10
DO_NOT_CALL = "do_not_call"  # the detail of a row skipped: its number is on the do-not-call list
MAX_RETRY_AFTER_SECONDS = 7 * 86_400
# A row's retries, from its first call to its last, fit within the time its campaign's records are kept
# (KEEP_SECONDS, 30 days from its last rows added), with a day to spare for the calls themselves.
MAX_RETRY_SPAN_SECONDS = 29 * 86_400


class CampaignRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(pattern=E164, description="The number called, E.164 (`+14155550100`).")
    body: dict[str, Any] | None = Field(default=None, description="The call's data: passed to the bot as "
                                        "`runner_args.body['body']`, as `POST /calls`' `body`.")


class Retry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on: list[Literal["busy", "no_answer", "failed", "canceled", "voicemail", "rejected", "not_placed"]] = Field(
        min_length=1, description="The outcomes a row is called again after.")
    after_seconds: float = Field(ge=0, le=MAX_RETRY_AFTER_SECONDS, description="How long after the outcome.")
    attempts: int = Field(ge=1, le=MAX_ATTEMPTS, description="Calls to a row at most, the first included.")

    @model_validator(mode="after")
    def _fits_in_the_time_kept(self) -> Retry:
        span = self.after_seconds * (self.attempts - 1)
        if span > MAX_RETRY_SPAN_SECONDS:
            raise ValueError(f"`after_seconds` × (`attempts` − 1) is {span:g} s, past the {MAX_RETRY_SPAN_SECONDS} s "
                             "(29 days) a campaign's retries may span: its records are kept 30 days, and a retry due "
                             "later would never be placed; give fewer attempts or a shorter `after_seconds`")
        return self


class CampaignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = Field(default=None, max_length=128, description="Yours, shown in lists.")
    rows: list[CampaignRow] = Field(min_length=1, description=f"The numbers to call, each with its own data; at "
                                    f"most {MAX_ROWS} in all (add more with `POST /campaigns/{{id}}/rows`).")
    caller_id: str = Field(alias="from", pattern=E164, description="The number every call comes from, E.164.")
    trunk: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$",
                              description="The SIP edge's trunk the calls go out through.")
    carrier: Literal["sip", "twilio", "telnyx"] | None = Field(
        default=None, description="As `POST /calls`' `carrier`: unset, `sip` with a trunk, else `twilio`.")
    voicemail: Literal["hang_up", "message", "flag"] | None = Field(
        default=None, description="As `POST /calls`' `voicemail` (Twilio and Telnyx).")
    concurrency: int = Field(default=1, ge=1, le=MAX_CONCURRENCY,
                             description="Calls in progress at once (being placed, ringing or talking).")
    pace: float | None = Field(default=None, gt=0, le=MAX_PACE, description="Calls started a second at most; "
                               "unset: the carrier account's (or trunk's) pace, which it may not exceed.")
    retry: Retry | None = Field(default=None, description="Outcomes called again: "
                                "`{\"on\": [\"busy\", \"no_answer\"], \"after_seconds\": 600, \"attempts\": 3}`.")
    start: bool = Field(default=True, description="`false`: created `stopped`, to add rows to first "
                        "(`POST /campaigns/{id}/rows`), then `POST /campaigns/{id}/resume`.")


class MoreRows(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[CampaignRow] = Field(min_length=1)
