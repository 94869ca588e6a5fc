"""The deployment lifecycle: every transition, the refusals, the convergence decision."""

from __future__ import annotations

import pytest

from alien.errors import Conflict, ValidationError
from alien.protocol.deployment import (
    ActionKind,
    Deleted,
    DeleteFailed,
    DeleteRequested,
    DeployFailed,
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
    needs_update,
    parse_event,
    parse_status,
)
from alien.protocol.errors import IllegalTransition

S = DeploymentState


def run(*events, status: DeploymentStatus | None = None) -> DeploymentStatus:
    status = status or DeploymentStatus()
    for event in events:
        status = apply(status, event)
    return status


def running(release: str = "rel_1") -> DeploymentStatus:
    return run(
        DesiredReleaseSet(release=release),
        ProvisionStarted(),
        Provisioned(),
        DeployStarted(release=release),
        DeploySucceeded(release=release),
    )


def updating(to: str = "rel_2", from_: str = "rel_1") -> DeploymentStatus:
    return run(DesiredReleaseSet(release=to), DeployStarted(release=to), status=running(from_))


def test_first_deploy_path_records_releases() -> None:
    status = running("rel_1")
    assert status.state is S.RUNNING
    assert status.provisioned
    assert status.current_release == status.last_good_release == status.desired_release == "rel_1"
    assert status.target_release is None and status.error is None


def test_update_success_moves_current_and_last_good() -> None:
    status = apply(updating(), DeploySucceeded(release="rel_2"))
    assert status.state is S.RUNNING
    assert (status.current_release, status.last_good_release) == ("rel_2", "rel_2")


def test_update_in_flight_keeps_serving_the_old_release() -> None:
    status = updating()
    assert status.state is S.UPDATING
    assert status.current_release == "rel_1"
    assert status.target_release == "rel_2"


def test_failed_update_keeps_last_good_running_with_the_error() -> None:
    status = apply(updating(), DeployFailed(release="rel_2", error="image pull failed"))
    assert status.state is S.UPDATE_FAILED
    assert status.current_release == status.last_good_release == "rel_1"
    assert status.failed_release == "rel_2"
    assert status.error == "image pull failed"


def test_failed_first_deploy_leaves_nothing_running() -> None:
    status = run(
        ProvisionStarted(),
        Provisioned(),
        DeployStarted(release="rel_1"),
        DeployFailed(release="rel_1", error="boom"),
    )
    assert status.state is S.FAILED
    assert status.current_release is None and status.last_good_release is None
    assert status.error == "boom"


def test_rollback_from_a_half_applied_update() -> None:
    status = apply(updating(), RollbackStarted(reason="health check failed"))
    assert status.state is S.ROLLING_BACK
    assert status.target_release == "rel_1"
    assert status.failed_release == "rel_2"
    assert status.current_release is None
    status = apply(status, RollbackSucceeded(release="rel_1"))
    assert status.state is S.UPDATE_FAILED
    assert status.current_release == "rel_1"
    assert status.error == "health check failed"


def test_rollback_without_reason_explains_itself() -> None:
    status = apply(updating(), RollbackStarted())
    assert status.error == "update to rel_2 failed"


def test_rollback_failure_means_nothing_good_runs() -> None:
    status = run(RollbackStarted(), RollbackFailed(error="disk full"), status=updating())
    assert status.state is S.FAILED
    assert status.current_release is None
    assert status.last_good_release == "rel_1"
    assert status.error == "disk full"


def test_rollback_can_be_retried_from_failed_when_a_good_release_exists() -> None:
    failed = run(RollbackStarted(), RollbackFailed(error="disk full"), status=updating())
    status = apply(failed, RollbackStarted())
    assert status.state is S.ROLLING_BACK
    assert status.error == "disk full"
    assert apply(status, RollbackSucceeded(release="rel_1")).state is S.UPDATE_FAILED


def test_rollback_refused_without_a_good_release() -> None:
    failed = run(
        ProvisionStarted(),
        Provisioned(),
        DeployStarted(release="r1"),
        DeployFailed(release="r1", error="x"),
    )
    with pytest.raises(IllegalTransition, match="no good release"):
        apply(failed, RollbackStarted())


def test_provision_failure_and_retry() -> None:
    failed = run(ProvisionStarted(), ProvisionFailed(error="quota exceeded"))
    assert failed.state is S.FAILED and not failed.provisioned
    with pytest.raises(IllegalTransition, match="provision again"):
        apply(failed, DeployStarted(release="r1"))
    assert apply(failed, RetryRequested()).state is S.PENDING
    assert apply(failed, ProvisionStarted()).state is S.PROVISIONING


def test_delete_from_anywhere_alive_then_absorbing() -> None:
    for status in (DeploymentStatus(), running(), updating()):
        deleting = apply(status, DeleteRequested())
        assert deleting.state is S.DELETING and deleting.target_release is None
        deleted = apply(deleting, Deleted())
        assert deleted == DeploymentStatus(state=S.DELETED)
        for event in (DeleteRequested(), DesiredReleaseSet(release="r9"), ProvisionStarted()):
            with pytest.raises(IllegalTransition, match="deleted"):
                apply(deleted, event)


def test_delete_failure_stays_deleting_with_the_error() -> None:
    status = run(DeleteRequested(), DeleteFailed(error="bucket not empty"), status=running())
    assert status.state is S.DELETING
    assert status.error == "bucket not empty"
    assert decide(status).kind is ActionKind.DELETE and decide(status).resume


def test_a_second_delete_request_is_refused() -> None:
    with pytest.raises(IllegalTransition):
        run(DeleteRequested(), DeleteRequested())


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (DeploymentStatus(), DeployStarted(release="r1")),
        (DeploymentStatus(), Provisioned()),
        (DeploymentStatus(), RollbackSucceeded(release="r1")),
        (DeploymentStatus(), RetryRequested()),
        (DeploymentStatus(), Deleted()),
    ],
)
def test_illegal_transitions_are_conflicts_with_a_stable_code(status, event) -> None:
    with pytest.raises(IllegalTransition) as info:
        apply(status, event)
    assert isinstance(info.value, Conflict)
    assert info.value.code == "ILLEGAL_TRANSITION"
    body = info.value.to_dict()["error"]
    assert body["details"] == {"state": "pending", "event": event.type}
    assert event.type in body["message"]


def test_a_report_for_another_release_is_refused() -> None:
    with pytest.raises(IllegalTransition, match=r"'rel_3'.*'rel_2'") as info:
        apply(updating(), DeploySucceeded(release="rel_3"))
    assert info.value.field == "release"


def test_desired_release_can_change_mid_update_without_losing_the_report() -> None:
    status = apply(updating(to="rel_2"), DesiredReleaseSet(release="rel_3"))
    status = apply(status, DeploySucceeded(release="rel_2"))
    assert status.current_release == "rel_2"
    assert needs_update(status)
    action = decide(status)
    assert (action.kind, action.release, action.resume) == (ActionKind.DEPLOY, "rel_3", False)


def test_needs_update() -> None:
    assert not needs_update(DeploymentStatus())
    assert needs_update(DeploymentStatus(desired_release="r1"))
    assert not needs_update(running("r1"))
    assert needs_update(apply(running("r1"), DesiredReleaseSet(release="r2")))
    assert not needs_update(
        apply(apply(running("r1"), DesiredReleaseSet(release="r2")), DeleteRequested())
    )


class TestDecide:
    def test_pending_provisions(self) -> None:
        assert decide(DeploymentStatus()).kind is ActionKind.PROVISION
        assert not decide(DeploymentStatus()).resume

    def test_in_flight_states_resume(self) -> None:
        provisioning = run(ProvisionStarted())
        assert (decide(provisioning).kind, decide(provisioning).resume) == (
            ActionKind.PROVISION,
            True,
        )
        action = decide(updating())
        assert (action.kind, action.release, action.resume) == (ActionKind.DEPLOY, "rel_2", True)
        action = decide(apply(updating(), RollbackStarted()))
        assert (action.kind, action.release, action.resume) == (ActionKind.ROLLBACK, "rel_1", True)

    def test_provisioned_without_a_release_waits(self) -> None:
        action = decide(run(ProvisionStarted(), Provisioned()))
        assert action.kind is ActionKind.IDLE
        assert "no release" in action.reason

    def test_converged_is_idle(self) -> None:
        assert decide(running()).kind is ActionKind.IDLE

    def test_a_failed_release_is_not_retried_in_a_loop(self) -> None:
        failed = apply(updating(), DeployFailed(release="rel_2", error="x"))
        assert decide(failed).kind is ActionKind.IDLE
        assert "rel_2 failed" in decide(failed).reason
        retry = decide(apply(failed, RetryRequested()))
        assert (retry.kind, retry.release) == (ActionKind.DEPLOY, "rel_2")
        newer = decide(apply(failed, DesiredReleaseSet(release="rel_3")))
        assert (newer.kind, newer.release) == (ActionKind.DEPLOY, "rel_3")

    def test_going_back_to_the_running_release_converges(self) -> None:
        failed = apply(updating(), DeployFailed(release="rel_2", error="x"))
        assert decide(apply(failed, DesiredReleaseSet(release="rel_1"))).kind is ActionKind.IDLE

    def test_failed_provisioning_waits_for_a_retry(self) -> None:
        failed = run(
            DesiredReleaseSet(release="r1"), ProvisionStarted(), ProvisionFailed(error="x")
        )
        assert decide(failed).kind is ActionKind.IDLE
        assert decide(apply(failed, RetryRequested())).kind is ActionKind.PROVISION

    def test_deleted_is_idle(self) -> None:
        assert decide(run(DeleteRequested(), Deleted())).kind is ActionKind.IDLE


class TestWire:
    def test_status_round_trips_through_json(self) -> None:
        status = apply(updating(), DeployFailed(release="rel_2", error="x"))
        assert parse_status(status.model_dump_json()) == status
        assert parse_status(status.model_dump(mode="json")) == status

    def test_events_round_trip(self) -> None:
        for event in (
            DeployFailed(release="rel_2", error="x"),
            RollbackStarted(),
            DesiredReleaseSet(release="v1.2.3"),
            Deleted(),
        ):
            assert parse_event(event.model_dump(mode="json")) == event
            assert parse_event(event.model_dump_json()) == event

    @pytest.mark.parametrize(
        ("data", "field"),
        [
            ({"type": "deploy_started", "release": "../etc"}, "release"),
            ({"type": "deploy_started"}, "release"),
            ({"type": "deploy_failed", "release": "r1", "error": ""}, "error"),
            ({"type": "deploy_failed", "release": "r1", "error": "x" * 5000}, "error"),
            ({"type": "teleport"}, "type"),
            ({}, "type"),
            ({"type": "deleted", "extra": 1}, "extra"),
        ],
    )
    def test_bad_events_are_validation_errors_naming_the_field(self, data, field) -> None:
        with pytest.raises(ValidationError) as info:
            parse_event(data)
        assert info.value.field == field

    def test_bad_json_is_a_validation_error(self) -> None:
        with pytest.raises(ValidationError):
            parse_event(b"{not json")

    @pytest.mark.parametrize(
        "data",
        [
            {"state": "running"},
            {"state": "running", "provisioned": True, "current_release": "a"},
            {"state": "failed", "provisioned": True},
            {"state": "pending", "provisioned": True},
            {"state": "deploying", "provisioned": True},
            {"state": "deleted", "desired_release": "r1"},
            {"state": "rolling_back", "provisioned": True, "target_release": "a", "error": "x"},
        ],
    )
    def test_impossible_statuses_are_refused(self, data) -> None:
        with pytest.raises(ValidationError, match="inconsistent"):
            parse_status(data)
