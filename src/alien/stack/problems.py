"""Collecting every problem in a stack and reporting them as one ``StackError``.

A stack author fixing errors one run at a time is slow, so validation gathers all problems it can
find and raises once. Each problem has a ``field`` naming where it is, in the form
``resources.<id>.<path>`` (e.g. ``resources.api.code.src``, ``resources.api.triggers[1].schedule``;
``resources[3]`` when the resource has no usable id) and a message saying what to do. The error's
own ``field`` is the first problem's; ``details["problems"]`` lists them all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from pydantic import ValidationError as PydanticValidationError
from pydantic_core import ErrorDetails

from alien.errors import StackError
from alien.stack.kinds import ResourceKind
from alien.stack.rules import show

#: How many problems the one-line message spells out; ``details`` always has them all.
MESSAGE_LIMIT = 5
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TAGS = {k.value for k in ResourceKind} | {"queue", "storage", "cron"}
_CHOICES = {
    "kind": "storage, vault, kv, queue or function",
    "type": "queue, storage or cron",
}
_MISSING_HINTS = {
    "code": "a function needs code: set code.src (its directory) and code.entrypoint "
    '(\'module:attribute\'); in alien_stack.py: .code(src="dir", entrypoint="app:app")',
    "lifecycle": "lifecycle is required: 'frozen' or 'live'",
}


@dataclass(frozen=True)
class Problem:
    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def field_path(prefix: str, loc: Sequence[str | int]) -> str:
    """Render a location inside a resource (or the manifest) as a dotted field name."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            segment = part if _PLAIN_SEGMENT.fullmatch(part) else show(part, 24)
            out = f"{out}.{segment}" if out else segment
    return out


def _resource_loc(loc: Sequence[str | int]) -> list[str | int]:
    """Drop what is pydantic's bookkeeping rather than the manifest's shape.

    Discriminated unions add the tag (``function``, ``cron``) after the position they decide,
    ``config`` is implied by the resource, and dict keys come with a ``[key]`` marker.
    """
    out: list[str | int] = []
    for i, part in enumerate(loc):
        after_choice = i == 0 or isinstance(loc[i - 1], int)
        if (after_choice and part in _TAGS) or part == "[key]":
            continue
        if part == "config" and not out:
            continue
        out.append(part)
    return out


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    loc = error["loc"]
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == "missing":
        last = loc[-1] if loc else ""
        return _MISSING_HINTS.get(str(last), "this field is required")
    if kind == "extra_forbidden":
        return "unknown field: remove it (check the spelling)"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        name = str(ctx.get("discriminator", "")).strip("'")
        given = f" {show(ctx['tag'])}" if "tag" in ctx else ""
        verb = "is not one of" if given else "is required, one of"
        return f"{name}{given} {verb}: {_CHOICES.get(name, '')}".rstrip(": ")
    if kind == "enum" and loc and "expected" in ctx:
        return f"{loc[-1]} must be {ctx['expected']}"
    if kind == "literal_error" and loc and loc[-1] == "manifest_version":
        return "unsupported manifest_version: this version of alien reads manifest_version 1"
    return error["msg"]


def from_pydantic(
    exc: PydanticValidationError, prefix: str = "", *, in_resource: bool = False
) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = _resource_loc(error["loc"]) if in_resource else list(error["loc"])
        if error["type"].startswith("union_tag_"):  # the problem is the tag field itself
            loc.append(str((error.get("ctx") or {}).get("discriminator", "")).strip("'"))
        problems.append(Problem(field_path(prefix, loc) or "manifest", _message(error)))
    return problems


def raise_problems(problems: Iterable[Problem], subject: str) -> None:
    """Raise one ``StackError`` for all ``problems`` (in order); do nothing if there are none."""
    found = list(problems)
    if not found:
        return
    if len(found) == 1:
        message = found[0].message
    else:
        listed = "; ".join(f"{p.field}: {p.message}" for p in found[:MESSAGE_LIMIT])
        more = f"; and {len(found) - MESSAGE_LIMIT} more" if len(found) > MESSAGE_LIMIT else ""
        message = f"{subject} has {len(found)} problems: {listed}{more}"
    raise StackError(
        message, field=found[0].field, details={"problems": [p.to_dict() for p in found]}
    )
