"""Why a pull-model deployment cannot be debugged, as the manager tells the engineer."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from alien.manager.services.debug_sessions import _why_unavailable
from alien.protocol.deployment import DeploymentState


def deployment(state: DeploymentState) -> Any:
    return SimpleNamespace(state=state.value)


def test_a_torn_down_deployment_is_said_to_be_gone_not_to_need_a_config() -> None:
    why = _why_unavailable(deployment(DeploymentState.DELETED))
    assert "torn down" in why and "debug.json" not in why
    assert "being torn down" in _why_unavailable(deployment(DeploymentState.DELETING))


@pytest.mark.parametrize(
    "state", sorted(set(DeploymentState) - {DeploymentState.DELETED, DeploymentState.DELETING})
)
def test_a_live_deployment_points_at_its_agent_and_its_config(state: DeploymentState) -> None:
    why = _why_unavailable(deployment(state))
    assert "no agent serving debug tunnels" in why and "alien-deploy debug" in why
