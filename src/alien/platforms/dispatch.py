"""The seam between "a command must run now" and the platform that runs its handler.

A :class:`CommandDispatcher` delivers one command to a function of a deployment and returns the
handler's :class:`~alien.protocol.command_messages.CommandResponse`. Leases, retries and
deadlines stay with the caller (the manager's push dispatch, the agent): a dispatcher is only
the transport, which is why it is small enough to implement once per platform —
``alien.platforms.local.dispatch.LocalDispatcher`` calls the function process's control
endpoint; cloud dispatchers (a Lambda ``Invoke``, a Pub/Sub or Service Bus message with a reply)
implement the same three calls later.

Large payloads: ``params`` is how a caller passes params it resolved from the envelope's
``params_ref`` (it downloads and verifies the blob; the function never needs access to the blob
store) — the object, or the file it downloaded, which a dispatcher streams to the function
without parsing it (the caller's memory stays flat however large the params). A result too large
to travel inline comes back from the handler side as its document (:class:`Invocation`: bytes,
or a file when the dispatcher was given a spool directory), and ``offload`` — the caller's hook,
e.g. the agent ``PUT``-ing to the command's signed upload URL — stores it and yields the
``result_ref``.

Also here, because every platform needs it: :func:`resolve_target`, which function of a stack a
command goes to when the caller names none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from alien.errors import Conflict, PlatformError, ValidationError
from alien.protocol.command_messages import (
    HANDLER_ERROR,
    NO_COMMAND_TARGET,
    TARGET_AMBIGUOUS,
    TARGET_REQUIRED,
    BlobRef,
    CommandEnvelope,
    CommandResponse,
)
from alien.stack.manifest import ManifestLike, as_manifest

FUNCTION_UNAVAILABLE = "FUNCTION_UNAVAILABLE"
"""The target function is not running (or not reachable) right now; the command did not start,
or its outcome is unknown if ``details.outcome`` is ``"unknown"``."""

ParamsSource = dict[str, Any] | Path
"""Params for a handler: the object, or a file holding it as JSON (verified by the caller)."""
ResultDocument = bytes | Path
"""A result document: its bytes, or a file holding them (which ``Invocation.finish`` removes)."""
ResultOffload = Callable[[ResultDocument], Awaitable[BlobRef]]
"""Stores a result document too large to travel inline; returns where it now lives."""


class CommandDispatcher(Protocol):
    """Deliver commands to the functions of one deployment (see the module docstring)."""

    async def invoke(
        self,
        function: str,
        envelope: CommandEnvelope,
        params: ParamsSource | None = None,
        *,
        offload: ResultOffload | None = None,
        include_traceback: bool = False,
    ) -> CommandResponse:
        """Run ``envelope``'s command on ``function``; its response (failures included).

        Raises ``PlatformError`` with code :data:`FUNCTION_UNAVAILABLE` when the function cannot
        be reached. ``include_traceback`` is the deployment's opt-in to ship tracebacks.
        """
        ...

    async def cancel(self, function: str, command_id: str) -> bool:
        """Signal the running command to stop; ``False`` if it is not running there."""
        ...

    async def known_commands(self) -> dict[str, list[str]]:
        """The command names each reachable function registered, by function id."""
        ...


@dataclass(frozen=True)
class Invocation:
    """What the handler side answered: a complete ``response``, or a successful result whose
    ``document`` (the JSON the inline result would have held) is too large to travel inline."""

    command_id: str
    lease_id: str
    response: CommandResponse | None = None
    document: ResultDocument | None = None

    def __post_init__(self) -> None:
        if (self.response is None) == (self.document is None):
            raise ValueError("an invocation has exactly one of a response and a document")

    async def finish(self, offload: ResultOffload | None) -> CommandResponse:
        """The response to report: a document is stored through ``offload`` (``result_ref``).

        Without ``offload`` a large result fails, as ``run_command`` does without one.
        """
        if self.response is not None:
            return self.response
        document = self.document
        assert document is not None
        try:
            if offload is None:
                size = document.stat().st_size if isinstance(document, Path) else len(document)
                return CommandResponse.failure(
                    self.command_id,
                    self.lease_id,
                    HANDLER_ERROR,
                    f"the result is {size} bytes as JSON, over the inline limit, and "
                    "this caller cannot store large results",
                )
            ref = await offload(document)
        finally:
            if isinstance(document, Path):
                document.unlink(missing_ok=True)
        return CommandResponse.success(self.command_id, self.lease_id, result_ref=ref)


def function_unavailable(
    function: str, reason: str, *, unknown_outcome: bool = False
) -> PlatformError:
    """The error of a dispatcher that cannot reach ``function``."""
    details: dict[str, Any] = {"function": function}
    if unknown_outcome:
        details["outcome"] = "unknown"
    return PlatformError(
        f"function {function} is unavailable: {reason}",
        field="target",
        code=FUNCTION_UNAVAILABLE,
        details=details,
    )


def command_targets(manifest: ManifestLike) -> list[str]:
    """The functions of ``manifest`` that accept commands (``commands_enabled``), sorted."""
    return sorted(fn.id for fn in as_manifest(manifest).functions() if fn.config.commands_enabled)


def resolve_target(manifest: ManifestLike, target: str | None) -> str:
    """The function a command goes to: ``target`` if given, else the one that accepts commands
    (the rules and codes of :func:`choose_target`)."""
    return choose_target(command_targets(manifest), target)


def choose_target(
    candidates: Iterable[str], target: str | None, *, where: str = "the stack"
) -> str:
    """The one rule every platform and the manager apply, over the ids of the functions of
    ``where`` that accept commands: none → 409 ``NO_COMMAND_TARGET``; one → implied; several
    and none named → 422 ``TARGET_REQUIRED``; a named one that is not among them → 422
    ``TARGET_AMBIGUOUS``. Every refusal lists the candidates (``details.targets``)."""
    names = sorted(candidates)
    listing = ", ".join(names)
    if not names:
        raise Conflict(
            f"{where} has no function with commands enabled (.commands_enabled() in the stack); "
            "nothing can run commands there",
            field="target",
            code=NO_COMMAND_TARGET,
        )
    if target is not None:
        if target in names:
            return target
        raise ValidationError(
            f"{target!r} is not a function of {where} with commands enabled (those are: {listing})",
            field="target",
            code=TARGET_AMBIGUOUS,
            details={"targets": names},
        )
    if len(names) == 1:
        return names[0]
    raise ValidationError(
        f"{where} has several functions with commands enabled ({listing}); name one as the target",
        field="target",
        code=TARGET_REQUIRED,
        details={"targets": names},
    )
