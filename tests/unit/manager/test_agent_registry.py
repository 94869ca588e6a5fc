"""The rules of :class:`alien.manager.agents.AgentRegistry`, on a fake clock."""

from __future__ import annotations

import pytest

from alien.manager.agents import POLL, POLL_GAP, WEBSOCKET, AgentConflict, AgentRegistry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _connected(agents: AgentRegistry, deployment_id: str) -> bool:
    return agents.connected_agent(deployment_id) is not None


def _open(agents: AgentRegistry, deployment_id: str, **options: str | None) -> None:
    with agents.channel(deployment_id, **options):  # type: ignore[arg-type]
        pass


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def agents(clock: Clock) -> AgentRegistry:
    return AgentRegistry(monotonic=clock)


def test_a_websocket_holder_frees_the_deployment_when_it_closes(agents: AgentRegistry) -> None:
    with agents.channel("dep_1", instance="a"):
        assert _connected(agents, "dep_1")
        with pytest.raises(AgentConflict) as refused:
            _open(agents, "dep_1", instance="b")
        assert refused.value.status == 409 and refused.value.details["holder"]["instance"] == "a"
        with agents.channel("dep_1", instance="a"):  # its own reconnect
            pass
        assert _connected(agents, "dep_1")
    assert not _connected(agents, "dep_1")
    with agents.channel("dep_1", instance="b"):
        assert _connected(agents, "dep_1")
    refused = agents.refused("dep_1")  # still shown after the deployment changed hands
    assert refused is not None and refused.instance == "b" and refused.holder_instance == "a"


def test_a_polling_holder_keeps_the_deployment_between_polls(
    agents: AgentRegistry, clock: Clock
) -> None:
    with agents.channel("dep_1", instance="a", transport=POLL):
        pass
    assert not _connected(agents, "dep_1")  # no request in flight
    clock.now += POLL_GAP - 0.1
    with pytest.raises(AgentConflict):
        _open(agents, "dep_1", instance="b", transport=POLL)
    clock.now += 0.2
    with agents.channel("dep_1", instance="b", transport=POLL):
        pass


def test_deployments_are_independent(agents: AgentRegistry) -> None:
    with agents.channel("dep_1", instance="a"), agents.channel("dep_2", instance="b"):
        assert _connected(agents, "dep_1") and _connected(agents, "dep_2")


def test_refusals_are_counted_per_instance_and_only_the_first_is_new(
    agents: AgentRegistry,
) -> None:
    firsts = []
    with agents.channel("dep_1", instance="a", peer="10.0.0.1"):
        for instance in ["b", "b", "b", None]:
            with pytest.raises(AgentConflict) as refused:
                _open(agents, "dep_1", instance=instance, peer="10.0.0.2")
            firsts.append(refused.value.first)
            if instance == "b":
                seen = agents.refused("dep_1")
                assert seen is not None and seen.instance == "b"
                assert seen.holder_peer == "10.0.0.1" and seen.peer == "10.0.0.2"
        assert firsts == [True, False, False, True]
        latest = agents.refused("dep_1")
        assert latest is not None and latest.instance is None and latest.attempts == 1
        with pytest.raises(AgentConflict) as again:  # alternating does not audit again
            _open(agents, "dep_1", instance="b")
        assert not again.value.first


def test_agents_without_an_instance_id_share_one_identity(agents: AgentRegistry) -> None:
    with agents.channel("dep_1"), agents.channel("dep_1", transport=WEBSOCKET):
        assert _connected(agents, "dep_1")
    with agents.channel("dep_1"), pytest.raises(AgentConflict):
        _open(agents, "dep_1", instance="a")
