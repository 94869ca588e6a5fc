"""Fan-out: one command to every deployment of a group, with bounded concurrency and errors.

The sync and asyncio clients run the same plan: list the group's deployments, start at most
``max_concurrency`` invocations at a time, and once more than ``max_errors`` of them failed start
no more (the rest are reported ``skipped``). Every deployment gets a :class:`FanOutResult`,
keyed ``<group>/<name>``.
"""

from __future__ import annotations

import threading
from typing import Any

from alien.commands.flows import Flow, Request, checked, result_flow, run_flow
from alien.commands.models import FanOutResult
from alien.errors import AlienError, ValidationError

_GONE = frozenset({"deleting", "deleted"})


def group_deployments_flow(group: str) -> Flow:
    """The ``<group>/<name>`` of every deployment in ``group`` that is not being torn down."""
    response = checked((yield Request("GET", "/v1/deployments", params={"group": group})))
    return [
        f"{item['group']}/{item['name']}"
        for item in response.json()["items"]
        if item.get("state") not in _GONE
    ]


def one_flow(**request: Any) -> Flow:
    """Invoke on one deployment (``request`` as for :func:`run_flow`) and return its
    :class:`FanOutResult`, or raise as ``invoke`` does. Not ``invoke_flow``, which keeps only the
    result: a success must name its command (``command_id``) as a failure does."""
    ended = yield from run_flow(**request)
    value = yield from result_flow(ended)
    return FanOutResult(
        deployment=request["deployment"], ok=True, result=value, command_id=ended.id
    )


def check_limits(max_concurrency: int, max_errors: int | None) -> None:
    if max_concurrency < 1:
        raise ValidationError("max_concurrency must be at least 1", field="max_concurrency")
    if max_errors is not None and max_errors < 0:
        raise ValidationError("max_errors must be 0 or more", field="max_errors")


class ErrorBudget:
    """Counts failures; once more than ``max_errors`` happened, nothing new may start.

    Thread-safe, because the sync fan-out runs invocations on threads."""

    def __init__(self, max_errors: int | None) -> None:
        self._max = max_errors
        self._errors = 0
        self._lock = threading.Lock()

    @property
    def exhausted(self) -> bool:
        with self._lock:
            return self._max is not None and self._errors > self._max

    def record(self, result: FanOutResult) -> FanOutResult:
        if not result.ok and not result.skipped:
            with self._lock:
                self._errors += 1
        return result

    def skipped(self, deployment: str) -> FanOutResult:
        error = AlienError(
            f"not started: more than {self._max} deployment(s) failed first",
            code="FAN_OUT_STOPPED",
        )
        return FanOutResult(deployment=deployment, ok=False, error=error, skipped=True)


def failed(deployment: str, exc: AlienError) -> FanOutResult:
    """A deployment whose invocation raised ``exc`` (refused, or the command failed)."""
    command_id = exc.details.get("command_id") if exc.details else None
    return FanOutResult(deployment=deployment, ok=False, error=exc, command_id=command_id)
