"""Stdlib coercion for the plain parameters of the commands whose start-up is on a clock.

Why: typer (0.2x) coerces every parameter through a pydantic ``TypeAdapter``, built on first use;
for ``alien debug <deployment> -- cmd`` that is pydantic's import plus eight adapters, 0.09-0.15 s
of a set-up budget of 0.5 s (measured on a 2-core VM; the rest of the run path stays off pydantic
on purpose, see ``docs/ARCHITECTURE.md``). A command declared with ``cls=FastParamsCommand`` gets
a stdlib coercion for parameters of the simple kinds — ``str``, ``int``, ``float``, ``bool``, a
list of one of them, or any of these ``| None`` — honouring ``min``/``max``; anything else keeps
typer's. A group declared with ``cls=FastParamsGroup`` (or a subclass) does the same for its own
parameters (``--help``), as each group on the command's path coerces its own.

This reaches into typer's coercion layer (``_TyperParameter._runtime_param``, ``RuntimeParam``),
which is not public. If a typer release changes it, nothing breaks: the command then keeps
typer's own coercion (slower to start, same behaviour), and ``tests/unit/cli`` says so.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from typer.core import TyperCommand, TyperGroup

try:
    from typer._click.exceptions import BadParameter
    from typer._coercion import RuntimeParam
    from typer.core import _TyperParameter
except ImportError:  # another typer: its own coercion applies
    RuntimeParam = None  # type: ignore[assignment,misc]

_SIMPLE = (str, int, float, bool)
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


def simple_kind(annotation: Any) -> tuple[type, bool] | None:
    """``(kind, is_list)`` for a simple annotation (see the module doc), else ``None``."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(rest) != 1:
            return None
        annotation = rest[0]
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (None,)
        return (item, True) if item in _SIMPLE else None
    return (annotation, False) if annotation in _SIMPLE else None


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class StdlibParam(RuntimeParam):  # type: ignore[misc,valid-type]
        """Coerces a simple parameter with ``kind(value)`` and checks its bounds."""

        kind: type = str
        is_list: bool = False

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if self.is_list:
                return [self._one(item, param, ctx) for item in value]
            return self._one(value, param, ctx)

        def _one(self, value: Any, param: Any, ctx: Any) -> Any:
            if self.kind is bool and type(value) is not bool:
                text = str(value).strip().lower()
                if text not in _TRUE | _FALSE:
                    raise BadParameter(f"{value!r} is not a boolean.", ctx=ctx, param=param)
                return text in _TRUE
            if type(value) is not self.kind:
                try:
                    value = self.kind(value)
                except (TypeError, ValueError):
                    name = {int: "an integer", float: "a number"}.get(self.kind, "a string")
                    raise BadParameter(f"{value!r} is not {name}.", ctx=ctx, param=param) from None
            low, high = self.parameter_info.min, self.parameter_info.max
            if low is not None and value < low:
                raise BadParameter(f"{value} is below the minimum, {low}.", ctx=ctx, param=param)
            if high is not None and value > high:
                raise BadParameter(f"{value} is above the maximum, {high}.", ctx=ctx, param=param)
            return value


def use_stdlib_coercion(params: list[Any]) -> None:
    """Give each simple typer parameter of ``params`` the stdlib coercion (module doc)."""
    if RuntimeParam is None:
        return
    for param in params:
        if not isinstance(param, _TyperParameter):
            continue
        try:
            _use_stdlib_coercion(param)
        except (AttributeError, TypeError):  # typer's internals changed: keep its coercion
            return


def _use_stdlib_coercion(param: Any) -> None:
    descriptor = param.type_descriptor
    info = descriptor.parameter_info
    if param._runtime_param is not None or descriptor.file_annotation is not None:
        return
    found = simple_kind(descriptor.annotation)
    if found is not None and not info.parser and not info.clamp:
        param._runtime_param = StdlibParam(
            parameter_info=info, annotation=descriptor.annotation, kind=found[0], is_list=found[1]
        )


class _StdlibCoercion:
    """Mixin: the parameters a command or group parses with — its own and the ``--help`` option
    click makes on demand — get the stdlib coercion first."""

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        use_stdlib_coercion(params)
        return params


class FastParamsCommand(_StdlibCoercion, TyperCommand):
    """A typer command whose simple parameters are coerced without pydantic (module doc)."""


class FastParamsGroup(_StdlibCoercion, TyperGroup):
    """A typer group whose simple parameters are coerced without pydantic (module doc)."""
