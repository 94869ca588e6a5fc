"""Shared building blocks for the protocol's wire models (pydantic).

Everything the protocol puts on the wire is a pydantic model so the manager, agent and CLI parse
the same shapes with the same limits. Input from the wire is untrusted: :func:`parse` turns any
pydantic failure into :class:`alien.errors.ValidationError` whose ``field`` names the offending
input, so callers never see a raw pydantic exception.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    StringConstraints,
    TypeAdapter,
)

from alien.errors import ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)
T = TypeVar("T")


class WireModel(BaseModel):
    """Base of every protocol model: immutable, no unknown fields, validated on every construction.

    ``extra="forbid"`` so a typo'd field from a peer is an error rather than silently dropped data.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


Timestamp = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware datetime, normalised to UTC (naive datetimes are refused)."""

ReleaseId = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$", strict=True)
]
"""A release reference (``rel_…`` or a tag-like name): 1 to 128 safe characters."""

ErrorMessage = Annotated[str, StringConstraints(min_length=1, max_length=4096, strict=True)]
"""A human error message; bounded so a peer cannot make us store megabytes of text."""


def prefixed_id(prefix: str) -> Any:
    """A constrained string type for ids such as ``cmd_…``: prefix, ``_``, 1 to 64 alphanumerics."""
    return Annotated[
        str, StringConstraints(pattern=rf"^{prefix}_[A-Za-z0-9]{{1,64}}$", strict=True)
    ]


def parse(model: type[ModelT], data: Any) -> ModelT:
    """Validate untrusted ``data`` (a dict or JSON text/bytes) as ``model``.

    Raises :class:`alien.errors.ValidationError` with ``field`` set to the dotted path of the
    first bad input (``"params_ref.sha256"``), so API errors point at the culprit.
    """
    try:
        if isinstance(data, str | bytes | bytearray):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise validation_error(model.__name__, exc) from None


def parse_as(adapter: TypeAdapter[T], what: str, data: Any, *, tagged: bool = False) -> T:
    """Like :func:`parse` for any type pydantic can validate.

    ``tagged`` marks a union discriminated by ``type``: pydantic then prefixes error locations
    with the tag (``deploy_started.release``), which we drop so ``field`` names the input key.
    """
    try:
        if isinstance(data, str | bytes | bytearray):
            return adapter.validate_json(data)
        return adapter.validate_python(data)
    except pydantic.ValidationError as exc:
        raise validation_error(what, exc, tagged=tagged) from None


def validation_error(
    what: str, exc: pydantic.ValidationError, *, tagged: bool = False
) -> ValidationError:
    """Translate a pydantic error into ours, keeping only the first problem (one-line message).

    The offending input value is never echoed: it may be a secret.
    """
    first = exc.errors(include_url=False, include_input=False)[0]
    loc = [str(part) for part in first["loc"]]
    if tagged:
        loc = loc[1:] if loc else (["type"] if first["type"].startswith("union_tag") else [])
    field = ".".join(loc) or None
    where = f" at {field!r}" if field else ""
    return ValidationError(f"invalid {what}{where}: {first['msg']}", field=field)
