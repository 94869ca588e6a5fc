"""A failed handler's traceback leaves the customer's environment only if the customer opted in
(``alien-deploy up --command-tracebacks``): by default the vendor gets the exception's type and
message, never its code, file paths or local values."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agent_deployments import Deployed, assert_clean, deploy
from agent_support import PinnedManager

from alien.commands import CommandFailed


@pytest.fixture(scope="module")
def opted_in(
    manager: PinnedManager, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    running = deploy(
        manager, tmp_path_factory.mktemp("acme-tb"), name="tracebacks", command_tracebacks=True
    )
    try:
        yield running
    finally:
        running.agent.stop()
    assert_clean(running.agent.log())


def _failure(deployed: Deployed) -> dict[str, object]:
    with deployed.client() as client, pytest.raises(CommandFailed) as failed:
        client.invoke("fail", {"reason": "disk on fire"})
    assert failed.value.code == "HANDLER_ERROR"
    error = failed.value.command.error
    assert error is not None and "disk on fire" in error.message
    return dict(error.details)


def test_no_traceback_leaves_by_default(deployed: Deployed) -> None:
    details = _failure(deployed)
    assert details["type"] == "builtins.ValueError"
    assert "traceback" not in details
    assert "agent_command_app" not in repr(details)  # no file path of the app either


def test_the_customer_can_opt_in_to_tracebacks(opted_in: Deployed) -> None:
    details = _failure(opted_in)
    traceback = details["traceback"]
    assert isinstance(traceback, str)
    assert "raise ValueError(reason)" in traceback and "ValueError: disk on fire" in traceback
