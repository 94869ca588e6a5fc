"""Property tests: random event sequences against the deployment state machine."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from alien.protocol.deployment import (
    ActionKind,
    ConvergeAction,
    Deleted,
    DeleteFailed,
    DeleteRequested,
    DeployFailed,
    DeploymentEvent,
    DeploymentState,
    DeploymentStatus,
    DeployStarted,
    DeploySucceeded,
    DesiredReleaseSet,
    Provisioned,
    ProvisionFailed,
    ProvisionStarted,
    RetryRequested,
    RollbackFailed,
    RollbackStarted,
    RollbackSucceeded,
    apply,
    decide,
    parse_event,
    parse_status,
)
from alien.protocol.errors import IllegalTransition

S = DeploymentState

releases = st.sampled_from(["rel_1", "rel_2", "rel_3"])
errors = st.sampled_from(["boom", "quota exceeded"])
events: st.SearchStrategy[DeploymentEvent] = st.one_of(
    st.just(ProvisionStarted()),
    st.just(Provisioned()),
    st.builds(ProvisionFailed, error=errors),
    st.builds(DeployStarted, release=releases),
    st.builds(DeploySucceeded, release=releases),
    st.builds(DeployFailed, release=releases, error=errors),
    st.builds(RollbackStarted, reason=st.none() | errors),
    st.builds(RollbackSucceeded, release=releases),
    st.builds(RollbackFailed, error=errors),
    st.just(DeleteRequested()),
    st.builds(DeleteFailed, error=errors),
    st.just(Deleted()),
    st.builds(DesiredReleaseSet, release=releases),
    st.just(RetryRequested()),
)


def start_event(action: ConvergeAction) -> DeploymentEvent | None:
    """The event an agent reports when it starts ``action`` (none when resuming)."""
    if action.resume:
        return None
    if action.kind is ActionKind.PROVISION:
        return ProvisionStarted()
    if action.kind is ActionKind.DEPLOY:
        return DeployStarted(release=action.release)
    return None


def success_event(action: ConvergeAction) -> DeploymentEvent:
    """The event an agent reports when ``action`` succeeds."""
    if action.kind is ActionKind.PROVISION:
        return Provisioned()
    if action.kind is ActionKind.DEPLOY:
        return DeploySucceeded(release=action.release)
    if action.kind is ActionKind.ROLLBACK:
        return RollbackSucceeded(release=action.release)
    return Deleted()


def check_invariants(status: DeploymentStatus) -> None:
    """Independent restatement of what each state means (not the model's own validator)."""
    s = status.state
    in_flight_target = s in {S.DEPLOYING, S.UPDATING, S.ROLLING_BACK}
    assert (status.target_release is not None) == in_flight_target
    if s is S.RUNNING:
        assert status.current_release == status.last_good_release is not None
        assert status.error is None
    if s is S.UPDATE_FAILED:
        assert status.current_release == status.last_good_release is not None
        assert status.error
    if s is S.FAILED:
        assert status.current_release is None and status.error
    if s is S.ROLLING_BACK:
        assert status.target_release == status.last_good_release
    if s is S.DELETED:
        assert status == DeploymentStatus(state=S.DELETED)
    if s in {S.PENDING, S.PROVISIONING}:
        assert not status.provisioned and status.current_release is None


class DeploymentMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.status = DeploymentStatus()

    @rule(event=events)
    def feed(self, event: DeploymentEvent) -> None:
        before = self.status
        try:
            after = apply(before, event)
        except IllegalTransition:
            assert self.status == before  # refusals change nothing
            return
        assert before.state is not S.DELETED, "deleted must be absorbing"
        self.status = after

    @rule()
    def follow_the_agent_decision(self) -> None:
        """Whatever decide() says is always executable: its start and success events apply."""
        action = decide(self.status)
        if action.kind is ActionKind.IDLE:
            return
        status = self.status
        start = start_event(action)
        if start is not None:
            status = apply(status, start)
        self.status = apply(status, success_event(action))

    @invariant()
    def consistent(self) -> None:
        check_invariants(self.status)
        assert parse_status(self.status.model_dump_json()) == self.status


TestDeploymentMachine = DeploymentMachine.TestCase
TestDeploymentMachine.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@settings(max_examples=200, deadline=None)
@given(st.lists(events, max_size=30))
def test_an_always_successful_agent_converges(history: list[DeploymentEvent]) -> None:
    """From any reachable status, following decide() with successes ends idle within 6 steps."""
    status = DeploymentStatus()
    for event in history:
        with contextlib.suppress(IllegalTransition):
            status = apply(status, event)
    for _ in range(6):
        action = decide(status)
        if action.kind is ActionKind.IDLE:
            break
        start = start_event(action)
        if start is not None:
            status = apply(status, start)
        status = apply(status, success_event(action))
    assert decide(status).kind is ActionKind.IDLE
    if status.state is S.RUNNING and status.desired_release is not None:
        # With nothing desired (a deploy the agent started on its own, e.g. restoring after a
        # restart, before the manager named a release) it keeps running what it deployed.
        assert status.current_release == status.desired_release


@given(events)
def test_events_survive_the_wire(event: DeploymentEvent) -> None:
    assert parse_event(event.model_dump_json()) == event


def test_exhaustive_exploration_of_the_reachable_statuses() -> None:
    """Breadth-first over every event with two releases: all states reachable, all consistent."""
    alphabet: list[DeploymentEvent] = [
        ProvisionStarted(),
        Provisioned(),
        ProvisionFailed(error="boom"),
        RollbackStarted(),
        RollbackFailed(error="boom"),
        DeleteRequested(),
        DeleteFailed(error="boom"),
        Deleted(),
        RetryRequested(),
    ]
    for release in ("rel_1", "rel_2"):
        alphabet += [
            DeployStarted(release=release),
            DeploySucceeded(release=release),
            DeployFailed(release=release, error="boom"),
            RollbackSucceeded(release=release),
            DesiredReleaseSet(release=release),
        ]
    seen = {DeploymentStatus()}
    frontier = [DeploymentStatus()]
    while frontier:
        status = frontier.pop()
        check_invariants(status)
        for event in alphabet:
            try:
                after = apply(status, event)
            except IllegalTransition:
                continue
            if after not in seen:
                seen.add(after)
                frontier.append(after)
    assert {status.state for status in seen} == set(DeploymentState)
    assert len(seen) > 100
