"""``@alien.command``: names, registration, duplicates and signatures refused at import time."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pytest

import alien
from alien.errors import ValidationError
from alien.sdk.commands import known_commands
from alien.sdk.registry import HandlerKind, registry

if TYPE_CHECKING:
    from decimal import Decimal  # only for the type checker: unresolvable at run time


def test_registers_sync_and_async_handlers_and_returns_them_unchanged() -> None:
    @alien.command("generate-report")
    async def generate_report(start_date: str, end_date: str | None = None) -> dict:
        return {"start": start_date}

    @alien.command("export")
    def export(table: str, ctx: alien.CommandContext) -> bytes:
        return table.encode()

    assert export("t", None) == b"t"  # still an ordinary function
    assert registry.get(HandlerKind.COMMAND, "generate-report").func is generate_report
    assert registry.get(HandlerKind.COMMAND, "export").func is export
    assert known_commands() == ["export", "generate-report"]


def test_known_commands_are_sorted_and_only_commands() -> None:
    for name in ["zeta", "alpha", "mid.dle", "0-first"]:
        alien.command(name)(lambda: None)
    alien.on_cron("nightly")(lambda tick: None)
    assert known_commands() == ["0-first", "alpha", "mid.dle", "zeta"]


@pytest.mark.parametrize(
    "name", ["", "Export", "-export", ".x", "has space", "a/b", "é", "x" * 129, None, 5]
)
def test_bad_names_are_refused(name: object) -> None:
    with pytest.raises(ValidationError, match="invalid command name") as info:
        alien.command(name)  # type: ignore[arg-type]
    assert info.value.field == "command"
    assert known_commands() == []


def test_longest_valid_name_is_accepted() -> None:
    alien.command("x" * 128)(lambda: None)
    assert known_commands() == ["x" * 128]


def test_a_second_handler_for_one_name_is_refused_naming_both() -> None:
    @alien.command("export")
    def first() -> None: ...

    with pytest.raises(ValidationError, match=r"two command handlers for 'export'.*first.*second"):

        @alien.command("export")
        def second() -> None: ...

    assert registry.get(HandlerKind.COMMAND, "export").func is first


def test_decorating_the_same_function_twice_is_harmless() -> None:
    def handler() -> None: ...

    alien.command("again")(handler)
    alien.command("again")(handler)
    assert known_commands() == ["again"]


def test_bare_decorator_asks_for_a_name() -> None:
    with pytest.raises(ValidationError, match=r'@alien.command\("my-command"\)'):

        @alien.command  # type: ignore[arg-type]
        def handler() -> None: ...


def test_a_non_callable_handler_is_refused() -> None:
    with pytest.raises(ValidationError, match="not callable"):
        alien.command("x")("not a function")  # type: ignore[arg-type]


def test_positional_only_parameters_are_refused() -> None:
    with pytest.raises(ValidationError, match="'table' is positional-only") as info:

        @alien.command("export")
        def export(table: str, /) -> None: ...

    assert info.value.field == "table"
    assert known_commands() == []


def _star(*args): ...  # type: ignore[no-untyped-def]


def _star_after_a_param(table: str, *args: int) -> None: ...


def _star_as_context(*args: alien.CommandContext) -> None: ...


@pytest.mark.parametrize("handler", [_star, _star_after_a_param, _star_as_context])
def test_var_positional_parameters_are_refused(handler: object) -> None:
    """Params arrive by name: ``*args`` would always be empty, every call INVALID_PARAMS."""
    with pytest.raises(ValidationError) as info:
        alien.command("star")(handler)  # type: ignore[arg-type]
    assert info.value.message == (
        "command 'star': parameter '*args' cannot receive params, which are passed by name; "
        "use named parameters or **kwargs"
    )
    assert info.value.field == "args"
    assert known_commands() == []


def test_var_positional_beside_kwargs_is_a_harmless_pass_through() -> None:
    @alien.command("wrapped")
    def wrapper(*args: object, **kwargs: object) -> None: ...

    assert known_commands() == ["wrapped"]


def test_two_context_parameters_are_refused() -> None:
    with pytest.raises(ValidationError, match="only one parameter may take the CommandContext"):

        @alien.command("export")
        def export(a: alien.CommandContext, b: alien.CommandContext) -> None: ...


class Opaque:
    """A plain class: pydantic cannot build it from JSON."""


def test_a_type_that_cannot_come_from_json_is_refused_naming_the_parameter() -> None:
    with pytest.raises(ValidationError, match="parameter 'thing' has a type") as info:

        @alien.command("export")
        def export(thing: Opaque) -> None: ...

    assert info.value.field == "thing"


def test_unresolvable_type_hints_are_refused_at_import_time() -> None:
    with pytest.raises(ValidationError, match=r"cannot read the handler's signature.*Decimal"):

        @alien.command("export")
        def export(amount: Decimal) -> None: ...


def test_string_annotations_are_resolved() -> None:
    @alien.command("when")
    def when(at: datetime, ctx: alien.CommandContext) -> None: ...

    assert known_commands() == ["when"]  # ``from __future__ import annotations`` is in effect
