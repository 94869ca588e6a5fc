"""Request and response bodies of the commands API (``/v1/commands``; docs/API.md).

Requests refuse unknown fields like every other route. A command's ``params`` travel inline up
to 256 KiB of JSON; larger ones are uploaded first (``POST /v1/commands/payloads``) and named by
``params_ref`` — the Python client and the CLI do that on their own, so callers never see it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, model_validator
from pydantic import StringConstraints as S

from alien.manager.schemas import ONE_LINE, Reference
from alien.protocol.command_messages import (
    MAX_ATTEMPTS_LIMIT,
    BlobRef,
    CommandError,
    CommandName,
    Traceparent,
)
from alien.protocol.commands import CommandState

Sha256Hex = Annotated[str, S(pattern=r"^[0-9a-f]{64}$", strict=True)]
IdempotencyKey = Annotated[str, S(pattern=r"^[\x21-\x7e]{1,200}$", strict=True)]
Target = Annotated[str, S(min_length=1, max_length=63, pattern=ONE_LINE, strict=True)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParamsRef(_Request):
    """Params uploaded with ``POST /v1/commands/payloads`` for the same deployment."""

    sha256: Sha256Hex
    size: int = Field(ge=0)


class CommandCreate(_Request):
    deployment: Reference = Field(description="deployment id, <group>/<name>, or a unique name")
    command: CommandName
    params: dict[str, JsonValue] | None = Field(
        default=None, description="inline params (≤ 256 KiB as JSON); default {}"
    )
    params_ref: ParamsRef | None = None
    target: Target | None = Field(
        default=None, description="the function to run it on; needed when several can"
    )
    timeout: float | None = Field(
        default=None, gt=0, description="seconds from now until the deadline (default 300)"
    )
    deadline: AwareDatetime | None = Field(default=None, description="absolute deadline (UTC)")
    idempotency_key: IdempotencyKey | None = Field(
        default=None,
        description="a retry with the same key and request returns the same command",
    )
    max_attempts: int | None = Field(default=None, ge=1, le=MAX_ATTEMPTS_LIMIT)
    traceparent: Traceparent | None = None

    @model_validator(mode="after")
    def _one_of_each(self) -> CommandCreate:
        if self.params is not None and self.params_ref is not None:
            raise ValueError("give params or params_ref, not both")
        if self.timeout is not None and self.deadline is not None:
            raise ValueError("give timeout or deadline, not both")
        return self


class CommandCancelRequest(_Request):
    reason: Annotated[str, S(min_length=1, max_length=1000, strict=True)] | None = None


class PayloadOut(BaseModel):
    sha256: str
    size: int


class CommandOut(BaseModel):
    """A command as the API shows it. ``result``/``result_ref``/``error`` appear once it ended:
    ``result_ref`` (a large result) carries a signed URL valid for 15 minutes, no token needed.
    """

    id: str
    deployment_id: str
    command: str
    target: str
    state: CommandState
    attempt: int
    max_attempts: int
    created_at: datetime
    deadline: datetime
    lease_expires_at: datetime | None
    ended_at: datetime | None
    created_by: str | None
    idempotency_key: str | None
    params: dict[str, JsonValue] | None = None
    params_ref: ParamsRef | None = None
    result: JsonValue = None
    result_ref: BlobRef | None = None
    error: CommandError | None = None


class CommandPage(BaseModel):
    items: list[CommandOut]
    next_before: str | None = Field(
        default=None, description="pass as ?before= for the next (older) page"
    )
