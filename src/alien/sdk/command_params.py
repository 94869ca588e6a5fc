"""Binding a command's JSON params object to its handler's keyword arguments.

The handler's signature is the params schema: each parameter is a params key, a parameter without
a default is required, ``**kwargs`` accepts any other key, and one parameter annotated
:class:`~alien.sdk.command_context.CommandContext` receives the context instead of a param.

Annotations are enforced with pydantic, **strictly, as JSON**: the params are validated as the JSON
they arrived as, so ``"5"`` for an ``int`` is refused (a CLI user who typed a string gets told so
rather than silently coerced), while types JSON cannot carry natively (``datetime``, ``UUID``,
enums, pydantic models, ``list[int]``, ``X | None``) are parsed from their JSON form. Unannotated
parameters take any JSON value. Defaults are never validated nor passed: an omitted optional
parameter gets the function's own default.

Everything that can be checked once is checked at decoration time (unresolvable annotations, types
pydantic cannot validate, positional-only parameters, ``*args`` without ``**kwargs``, duplicate
context parameters), so a broken handler fails when the app is imported, not when a customer runs
the command.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic
from pydantic import ConfigDict, Field, TypeAdapter, create_model

from alien.errors import ValidationError
from alien.sdk.command_context import CommandContext

MAX_PROBLEMS = 20
"""At most this many problems are listed in an ``INVALID_PARAMS`` failure (bounded details)."""


class InvalidParams(Exception):
    """The params do not suit the handler; ``field`` names the first offending parameter."""

    def __init__(self, message: str, *, field: str, problems: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.problems = problems


@dataclass(frozen=True)
class CommandSignature:
    """What a handler accepts, compiled once from its signature."""

    names: tuple[str, ...]
    """The params keys, in signature order."""
    context_param: str | None
    accepts_extra: bool
    is_async: bool
    """Run on the event loop (a coroutine function, or an object whose ``__call__`` is one)."""
    model: type[pydantic.BaseModel]

    @classmethod
    def of(cls, func: Callable[..., Any], command: str) -> CommandSignature:
        """Compile ``func``'s signature; ``ValidationError`` if it cannot serve as a handler."""
        try:
            signature = inspect.signature(func, eval_str=True)
        except (NameError, TypeError, ValueError, SyntaxError, AttributeError) as exc:
            raise ValidationError(
                f"command {command!r}: cannot read the handler's signature or resolve its type "
                f"hints ({type(exc).__name__}: {exc})",
                field="command",
            ) from None
        names: list[str] = []
        fields: dict[str, Any] = {}
        context_param: str | None = None
        accepts_extra = False
        for param in signature.parameters.values():
            if param.kind is param.VAR_KEYWORD:
                accepts_extra = True
            elif param.kind is param.VAR_POSITIONAL:
                # Params arrive by name, so *args is always empty. Beside **kwargs it is the
                # harmless pass-through of a wrapper, ``(*args, **kwargs)``; alone, its author
                # expected it to collect params, and every call would fail on "unexpected
                # parameter" instead: refused here.
                if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
                    raise ValidationError(
                        f"command {command!r}: parameter '*{param.name}' cannot receive params, "
                        "which are passed by name; use named parameters or **kwargs",
                        field=param.name,
                    )
            elif _is_context(param.annotation):
                if context_param is not None:
                    raise ValidationError(
                        f"command {command!r}: only one parameter may take the CommandContext "
                        f"({context_param!r} and {param.name!r} both do)",
                        field=param.name,
                    )
                context_param = param.name
            elif param.kind is param.POSITIONAL_ONLY:
                raise ValidationError(
                    f"command {command!r}: parameter {param.name!r} is positional-only, but "
                    "command params are passed by name",
                    field=param.name,
                )
            else:
                annotation = Any if param.annotation is param.empty else param.annotation
                _check_annotation(command, param.name, annotation)
                default = ... if param.default is param.empty else None
                # Fields get neutral names and the parameter name as alias: parameter names such
                # as ``json`` or ``_private`` would clash with BaseModel's own attributes.
                fields[_field(len(names))] = (annotation, Field(default=default, alias=param.name))
                names.append(param.name)
        config = ConfigDict(strict=True, extra="forbid")  # unknown keys are sorted out in bind()
        model = create_model("CommandParams", __config__=config, **fields)
        is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
            type(func).__call__
        )
        return cls(tuple(names), context_param, accepts_extra, is_async, model)

    def bind(self, params: object, context: CommandContext) -> dict[str, Any]:
        """The keyword arguments for one call, or :class:`InvalidParams` saying what is wrong."""
        if not isinstance(params, Mapping):
            raise _invalid("params", f"params must be a JSON object, not {_json_kind(params)}")
        if not all(isinstance(key, str) for key in params):
            raise _invalid("params", "params keys must be strings")
        if self.context_param is not None and self.context_param in params:
            raise _invalid(
                self.context_param,
                f"parameter {self.context_param!r} is the command context, not a param",
            )
        names = set(self.names)
        known = {key: value for key, value in params.items() if key in names}
        extra = {key: value for key, value in params.items() if key not in names}
        problems: list[dict[str, str]] = []
        validated = None
        try:
            validated = self.model.model_validate_json(_json(known))
        except pydantic.ValidationError as exc:
            problems = [_problem(error) for error in exc.errors(include_input=False)]
        if extra and not self.accepts_extra:
            takes = ", ".join(self.names) if self.names else "no params"
            problems += [
                {
                    "field": key,
                    "message": f"unexpected parameter {key!r} (the handler takes: {takes})",
                }
                for key in extra
            ]
        if problems or validated is None:
            first = problems[0]
            raise InvalidParams(
                first["message"], field=first["field"], problems=problems[:MAX_PROBLEMS]
            )
        given = validated.model_fields_set  # omitted optional params keep the function's default
        kwargs = {
            name: getattr(validated, _field(index))
            for index, name in enumerate(self.names)
            if _field(index) in given
        }
        if extra:  # a private copy: the handler must not alter the caller's params
            kwargs.update(json.loads(_json(extra)))
        if self.context_param is not None:
            kwargs[self.context_param] = context
        return kwargs


def _field(index: int) -> str:
    """The model field of the ``index``-th parameter (the parameter name is its alias)."""
    return f"p{index}"


def _json(value: dict[str, Any]) -> bytes:
    """``value`` as UTF-8 JSON, or ``InvalidParams`` if it is not JSON at all."""
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False).encode()
    except (TypeError, ValueError, RecursionError) as exc:  # a set, NaN, lone surrogate, too deep
        raise _invalid("params", f"params are not valid JSON ({exc})") from None


def _invalid(field: str, message: str) -> InvalidParams:
    return InvalidParams(message, field=field, problems=[{"field": field, "message": message}])


def _problem(error: Any) -> dict[str, str]:
    loc = [str(part) for part in error["loc"]]
    field = ".".join(loc) or "params"
    if error["type"] == "missing" and len(loc) == 1:
        message = f"missing required parameter {loc[0]!r}"
    elif loc:
        message = f"parameter {field!r}: {error['msg']}"
    else:
        message = error["msg"]
    return {"field": field, "message": message}


def _is_context(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, CommandContext)


def _check_annotation(command: str, name: str, annotation: object) -> None:
    """Fail at decoration time, naming the parameter, if pydantic cannot validate the type."""
    try:
        TypeAdapter(annotation)
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValidationError(
            f"command {command!r}: parameter {name!r} has a type that cannot be read from JSON "
            f"params ({first_line})",
            field=name,
        ) from None


def _json_kind(value: object) -> str:
    kinds = {
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    if value is None:
        return "null"
    return next((k for t, k in kinds.items() if isinstance(value, t)), type(value).__name__)
