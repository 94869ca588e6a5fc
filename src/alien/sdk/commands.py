"""Remote commands in app code: ``@alien.command(name)`` and the call the runtime makes.

::

    @alien.command("generate-report")
    async def generate_report(start_date: str, end_date: str | None = None) -> dict: ...

    @alien.command("export")
    def export(table: str, ctx: alien.CommandContext) -> bytes: ...

The decorator validates the name, compiles the handler's signature into a params schema (see
:mod:`alien.sdk.command_params`), registers it in the process-wide handler registry (a second
handler for one name is refused at import time) and returns the function unchanged.

:func:`run_command` is what the function runtime or the agent calls for one delivery. It does no
network I/O and never raises for anything the params, the handler or its result do: every outcome
is a :class:`~alien.protocol.commands.CommandResponse` for the context's lease —

* unknown name → ``UNKNOWN_COMMAND`` (details ``known``: the registered names, sorted);
* params that do not suit the handler → ``INVALID_PARAMS`` (details ``field`` and ``problems``);
* deadline passed → ``HANDLER_TIMEOUT``; cancelled → ``COMMAND_CANCELLED``;
* the handler raised → ``HANDLER_ERROR`` (or the code of an ``AlienError`` it raised), see
  :mod:`alien.sdk.command_failures` for what a failure may carry;
* it returned → a success whose result is encoded per :mod:`alien.sdk.command_results` (JSON
  inline, bytes as ``{"$bytes": base64}``, too large → stored through ``offload``).

Only the caller being cancelled (``CancelledError``) and a failing ``offload`` (the runtime's own
I/O, which it may retry) propagate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from alien.errors import AlienError, ValidationError
from alien.protocol.command_messages import (
    HANDLER_ERROR,
    INVALID_PARAMS,
    MAX_INLINE_BYTES,
    UNKNOWN_COMMAND,
    CommandResponse,
    validate_command_name,
)
from alien.sdk.command_context import CommandContext
from alien.sdk.command_execution import (
    CANCEL_GRACE_SECONDS,
    Finished,
    Outcome,
    Raised,
    Stopped,
    execute,
)
from alien.sdk.command_failures import exception_failure, failure
from alien.sdk.command_params import CommandSignature, InvalidParams
from alien.sdk.command_results import (
    ResultOffload,
    UnserialisableResult,
    encode_result,
    result_document,
)
from alien.sdk.registry import Handler, HandlerKind, registry

__all__ = ["CommandContext", "command", "known_commands", "run_command"]

log = logging.getLogger("alien.sdk.commands")

F = TypeVar("F", bound=Callable[..., Any])

_signatures: dict[str, tuple[Callable[..., Any], CommandSignature]] = {}
"""Compiled signatures by command name, with the function they were compiled from."""


def command(name: str) -> Callable[[F], F]:
    """Register the decorated function as the handler of the remote command ``name``.

    ``name`` must match ``^[a-z0-9][a-z0-9._-]{0,127}$``. Raises ``ValidationError`` at import
    time for a bad name, a second handler for the same name, or a signature that cannot take JSON
    params (see :mod:`alien.sdk.command_params`).
    """
    if callable(name):
        raise ValidationError(
            'give the command a name: @alien.command("my-command")', field="command"
        )
    validate_command_name(name)

    def register(func: F) -> F:
        if not callable(func):
            raise ValidationError(f"command {name!r}: the handler is not callable", field=name)
        signature = CommandSignature.of(func, name)
        registry.add(HandlerKind.COMMAND, name, func)
        _signatures[name] = (func, signature)
        return func

    return register


def known_commands() -> list[str]:
    """The names of the registered command handlers, sorted."""
    return [handler.name for handler in registry.of_kind(HandlerKind.COMMAND)]


async def run_command(
    name: str,
    params: Any,
    context: CommandContext,
    *,
    include_traceback: bool = False,
    offload: ResultOffload | None = None,
    cancel_grace: float = CANCEL_GRACE_SECONDS,
) -> CommandResponse:
    """Run the handler of ``name`` with ``params`` (a JSON object) for ``context``'s delivery.

    ``include_traceback`` is the deployment's opt-in to send handler tracebacks to the vendor.
    ``offload`` stores a result too large to travel inline; without it such a result fails.
    ``cancel_grace`` bounds the wait for a cancelled async handler to unwind.
    """
    handler = registry.get(HandlerKind.COMMAND, name) if isinstance(name, str) else None
    if handler is None:
        return _unknown(name, context)
    try:
        signature = _signature_of(handler)
        kwargs = signature.bind(params, context)
    except InvalidParams as exc:
        details = {"field": exc.field, "problems": exc.problems}
        return _logged(name, failure(context, INVALID_PARAMS, f"{name}: {exc.message}", details))
    except AlienError as exc:  # a handler registered without the decorator, and unusable
        return _logged(name, failure(context, HANDLER_ERROR, exc.message))
    outcome = await execute(
        handler.func,
        kwargs,
        context,
        is_async=signature.is_async,
        label=name,
        cancel_grace=cancel_grace,
    )
    response = await _respond(
        outcome, context, include_traceback=include_traceback, offload=offload
    )
    return _logged(name, response)


def _signature_of(handler: Handler) -> CommandSignature:
    cached = _signatures.get(handler.name)
    if cached is not None and cached[0] is handler.func:
        return cached[1]
    signature = CommandSignature.of(handler.func, handler.name)
    _signatures[handler.name] = (handler.func, signature)
    return signature


async def _respond(
    outcome: Outcome,
    context: CommandContext,
    *,
    include_traceback: bool,
    offload: ResultOffload | None,
) -> CommandResponse:
    if isinstance(outcome, Stopped):
        return failure(context, outcome.code, outcome.reason)
    if isinstance(outcome, Raised):
        return exception_failure(context, outcome.error, include_traceback=include_traceback)
    return await _success(outcome, context, offload)


async def _success(
    outcome: Finished, context: CommandContext, offload: ResultOffload | None
) -> CommandResponse:
    try:
        result = encode_result(outcome.value)
        document = result_document(result)
    except UnserialisableResult as exc:
        return failure(context, HANDLER_ERROR, str(exc))
    if len(document) <= MAX_INLINE_BYTES:
        try:
            return CommandResponse.success(context.command_id, context.lease_id, result)
        except ValueError as exc:  # pydantic refused it: the message names the problem
            return failure(context, HANDLER_ERROR, f"the result is not valid JSON: {exc}")
    if offload is None:
        return failure(
            context,
            HANDLER_ERROR,
            f"the result is {len(document)} bytes as JSON, over the {MAX_INLINE_BYTES}-byte "
            "inline limit, and this runtime cannot store large results",
        )
    ref = await offload(document)
    return CommandResponse.success(context.command_id, context.lease_id, result_ref=ref)


def _unknown(name: object, context: CommandContext) -> CommandResponse:
    known = known_commands()
    listing = ", ".join(known) if known else "none are registered"
    shown = name if isinstance(name, str) else repr(name)
    response = failure(
        context,
        UNKNOWN_COMMAND,
        f"unknown command {shown[:128]!r}; known commands: {listing}",
        {"known": known},
    )
    return _logged(shown[:128], response)


def _logged(name: str, response: CommandResponse) -> CommandResponse:
    """Log the outcome by code only: params, results and messages may hold customer data.
    Successes at DEBUG: a line per command cost a busy function a tenth of its time, and its
    agent as much again to collect the line (the manager keeps every command's outcome)."""
    if response.ok:
        log.debug("command %r (%s) succeeded", name, response.command_id)
    else:
        code = response.error.code if response.error is not None else "?"
        log.warning("command %r (%s) failed: %s", name, response.command_id, code)
    return response
