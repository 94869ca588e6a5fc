"""The command lifecycle: leases, expiry, responses, refusals, envelopes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alien.errors import ValidationError
from alien.protocol.commands import (
    COMMAND_CANCELLED,
    COMMAND_EXPIRED,
    COMMAND_FINISHED,
    DUPLICATE_RESPONSE,
    HANDLER_ERROR,
    MAX_ATTEMPTS,
    STALE_LEASE,
    BlobRef,
    CommandRecord,
    CommandRefused,
    CommandResponse,
    CommandState,
    IllegalTransition,
    acknowledge,
    cancel,
    dispatch,
    envelope_for,
    lease,
    new_command,
    next_wakeup,
    renew,
    respond,
    tick,
)

C = CommandState
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fresh(max_attempts: int = 3, deadline: float = 300) -> CommandRecord:
    return new_command(
        command_id="cmd_1",
        deployment_id="dep_1",
        command="generate-report",
        now=T0,
        deadline=at(deadline),
        max_attempts=max_attempts,
    )


def ok(lease_id: str, result: object = None) -> CommandResponse:
    return CommandResponse.success("cmd_1", lease_id, result)


def leased(lease_id: str = "lse_a", ttl: float = 30) -> CommandRecord:
    return lease(fresh(), lease_id=lease_id, now=T0, ttl=ttl)


class TestNew:
    def test_starts_pending_at_attempt_one(self) -> None:
        record = fresh()
        assert (record.state, record.attempt, record.lease_id) == (C.PENDING, 1, None)
        assert next_wakeup(record) == at(300)

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"command": "Generate"}, "command"),
            ({"command": "../x"}, "command"),
            ({"command": ""}, "command"),
            ({"deadline": T0}, "deadline"),
            ({"command_id": "job_1"}, "id"),
            ({"deployment_id": "dep_"}, "deployment_id"),
            ({"max_attempts": 0}, "max_attempts"),
        ],
    )
    def test_bad_input_names_the_field(self, changes, field) -> None:
        args = {
            "command_id": "cmd_1",
            "deployment_id": "dep_1",
            "command": "x",
            "now": T0,
            "deadline": at(60),
            **changes,
        }
        with pytest.raises(ValidationError) as info:
            new_command(**args)
        assert info.value.field == field

    @pytest.mark.parametrize(
        ("now", "deadline", "field"),
        [
            (datetime(2026, 1, 1), datetime(2026, 1, 2), "now"),
            (T0, datetime(2026, 1, 2), "deadline"),
        ],
    )
    def test_naive_datetimes_are_refused(self, now, deadline, field) -> None:
        with pytest.raises(ValidationError) as info:
            new_command(
                command_id="cmd_1", deployment_id="dep_1", command="x", now=now, deadline=deadline
            )
        assert info.value.field == field

    def test_operations_refuse_a_naive_now(self) -> None:
        with pytest.raises(ValidationError) as info:
            tick(fresh(), datetime(2026, 1, 1, 0, 1))
        assert info.value.field == "now"


class TestLeases:
    def test_push_dispatch_then_acknowledge(self) -> None:
        record = dispatch(fresh(), lease_id="lse_a", now=T0, ttl=30)
        assert (record.state, record.lease_expires_at) == (C.DISPATCHED, at(30))
        record = acknowledge(record, lease_id="lse_a", now=at(1), ttl=30)
        assert (record.state, record.lease_expires_at) == (C.LEASED, at(31))

    def test_acknowledging_another_lease_is_stale(self) -> None:
        record = dispatch(fresh(), lease_id="lse_a", now=T0, ttl=30)
        with pytest.raises(CommandRefused) as info:
            acknowledge(record, lease_id="lse_b", now=at(1), ttl=30)
        assert info.value.code == STALE_LEASE

    def test_a_pending_command_is_never_taken_by_an_acknowledgement(self) -> None:
        """Not a fresh one (held back for an approval, say), nor one whose lease was lost: the
        late worker acknowledging its old lease must not get it back."""
        lost = tick(dispatch(fresh(), lease_id="lse_a", now=T0, ttl=30), at(30))
        for record, lease_id in ((fresh(), "lse_made_up"), (lost, "lse_a")):
            with pytest.raises(CommandRefused) as info:
                acknowledge(record, lease_id=lease_id, now=at(31), ttl=30)
            assert info.value.code == STALE_LEASE

    def test_acknowledging_the_held_lease_again_is_illegal_not_stale(self) -> None:
        record = acknowledge(
            dispatch(fresh(), lease_id="lse_a", now=T0, ttl=30), lease_id="lse_a", now=at(1), ttl=30
        )
        with pytest.raises(IllegalTransition):
            acknowledge(record, lease_id="lse_a", now=at(2), ttl=30)
        with pytest.raises(CommandRefused) as info:
            acknowledge(record, lease_id="lse_b", now=at(2), ttl=30)
        assert info.value.code == STALE_LEASE

    def test_pull_lease_straight_from_pending(self) -> None:
        record = leased("lse_a")
        assert (record.state, record.lease_id) == (C.LEASED, "lse_a")

    def test_leasing_a_held_command_is_illegal(self) -> None:
        with pytest.raises(IllegalTransition):
            lease(leased(), lease_id="lse_b", now=at(1), ttl=30)
        with pytest.raises(IllegalTransition):
            lease(
                dispatch(fresh(), lease_id="lse_a", now=T0, ttl=30),
                lease_id="lse_a",
                now=at(1),
                ttl=30,
            )
        with pytest.raises(IllegalTransition):
            dispatch(leased(), lease_id="lse_b", now=at(1), ttl=30)

    def test_renew_extends_but_never_past_the_deadline(self) -> None:
        record = renew(leased(), lease_id="lse_a", now=at(20), ttl=30)
        assert record.lease_expires_at == at(50)
        record = renew(record, lease_id="lse_a", now=at(45), ttl=3600)
        assert record.lease_expires_at == at(300)

    def test_renew_with_another_lease_or_after_expiry_is_stale(self) -> None:
        with pytest.raises(CommandRefused) as info:
            renew(leased(), lease_id="lse_b", now=at(1), ttl=30)
        assert info.value.code == STALE_LEASE
        with pytest.raises(CommandRefused) as info:
            renew(leased(), lease_id="lse_a", now=at(30), ttl=30)
        assert info.value.code == STALE_LEASE

    @pytest.mark.parametrize("ttl", [0, -1, float("nan")])
    def test_lease_duration_must_be_positive(self, ttl) -> None:
        with pytest.raises(ValidationError) as info:
            lease(fresh(), lease_id="lse_a", now=T0, ttl=ttl)
        assert info.value.field == "ttl"

    def test_lost_lease_returns_to_pending_with_the_next_attempt(self) -> None:
        record = tick(leased(), at(30))
        assert (record.state, record.attempt, record.lease_id) == (C.PENDING, 2, None)
        assert tick(leased(), at(29.9)) == leased()

    def test_a_dispatched_command_also_loses_its_offer(self) -> None:
        record = tick(dispatch(fresh(), lease_id="lse_a", now=T0, ttl=5), at(5))
        assert (record.state, record.attempt) == (C.PENDING, 2)

    def test_the_last_lost_lease_fails_with_max_attempts(self) -> None:
        record = fresh(max_attempts=2)
        for n in range(2):
            record = lease(record, lease_id=f"lse_{n}", now=at(n * 10), ttl=5)
            record = tick(record, at(n * 10 + 5))
        assert record.state is C.FAILED
        assert record.error.code == MAX_ATTEMPTS
        assert record.ended_at == at(15)
        assert record.outcome_error == record.error

    def test_next_wakeup_is_the_lease_expiry_while_held(self) -> None:
        assert next_wakeup(leased()) == at(30)
        assert next_wakeup(cancel(leased(), now=at(1))) is None


class TestDeadline:
    def test_deadline_expires_any_live_state(self) -> None:
        for record in (fresh(), leased(), dispatch(fresh(), lease_id="lse_a", now=T0, ttl=9)):
            expired = tick(record, at(300))
            assert expired.state is C.EXPIRED
            assert expired.error.code == COMMAND_EXPIRED
            assert expired.ended_at == at(300)

    def test_deadline_beats_a_lost_lease(self) -> None:
        record = lease(fresh(deadline=20), lease_id="lse_a", now=T0, ttl=60)
        assert record.lease_expires_at == at(20)
        assert tick(record, at(25)).state is C.EXPIRED

    def test_every_operation_sees_the_deadline(self) -> None:
        with pytest.raises(CommandRefused) as info:
            respond(leased(), ok("lse_a"), now=at(301))
        assert info.value.code == COMMAND_EXPIRED


class TestResponses:
    def test_success(self) -> None:
        record = respond(leased(), ok("lse_a", {"rows": 3}), now=at(2))
        assert record.state is C.SUCCEEDED
        assert record.response.result == {"rows": 3}
        assert record.ended_at == at(2)
        assert record.outcome_error is None
        assert record.lease_expires_at is None

    def test_handler_failure_is_final(self) -> None:
        response = CommandResponse.failure("cmd_1", "lse_a", HANDLER_ERROR, "KeyError: 'x'")
        record = respond(leased(), response, now=at(2))
        assert record.state is C.FAILED
        assert record.outcome_error.code == HANDLER_ERROR

    def test_a_response_to_a_dispatched_offer_is_accepted(self) -> None:
        record = dispatch(fresh(), lease_id="lse_a", now=T0, ttl=30)
        assert respond(record, ok("lse_a"), now=at(1)).state is C.SUCCEEDED

    def test_duplicate_response_is_refused_and_not_applied_twice(self) -> None:
        record = respond(leased(), ok("lse_a", 1), now=at(2))
        with pytest.raises(CommandRefused) as info:
            respond(record, ok("lse_a", 2), now=at(3))
        assert info.value.code == DUPLICATE_RESPONSE
        assert record.response.result == 1

    def test_response_from_a_lost_lease_is_stale(self) -> None:
        record = tick(leased("lse_a"), at(30))
        record = lease(record, lease_id="lse_b", now=at(31), ttl=30)
        with pytest.raises(CommandRefused) as info:
            respond(record, ok("lse_a"), now=at(32))
        assert info.value.code == STALE_LEASE
        assert info.value.field == "lease_id"
        assert respond(record, ok("lse_b"), now=at(33)).state is C.SUCCEEDED

    def test_response_after_the_lease_ran_out_is_stale_even_without_a_sweep(self) -> None:
        with pytest.raises(CommandRefused) as info:
            respond(leased(), ok("lse_a"), now=at(30))
        assert info.value.code == STALE_LEASE

    def test_late_response_after_another_lease_finished_it(self) -> None:
        record = lease(tick(leased("lse_a"), at(30)), lease_id="lse_b", now=at(31), ttl=30)
        record = respond(record, ok("lse_b"), now=at(32))
        with pytest.raises(CommandRefused) as info:
            respond(record, ok("lse_a"), now=at(33))
        assert info.value.code == COMMAND_FINISHED

    def test_response_for_another_command_is_a_validation_error(self) -> None:
        with pytest.raises(ValidationError) as info:
            respond(leased(), CommandResponse.success("cmd_2", "lse_a"), now=at(1))
        assert info.value.field == "command_id"

    def test_response_to_a_pending_command_is_stale(self) -> None:
        with pytest.raises(CommandRefused) as info:
            respond(fresh(), ok("lse_a"), now=at(1))
        assert info.value.code == STALE_LEASE


class TestCancel:
    def test_cancel_any_live_state(self) -> None:
        for record in (fresh(), leased(), dispatch(fresh(), lease_id="lse_a", now=T0, ttl=9)):
            cancelled = cancel(record, now=at(1), reason="operator changed their mind")
            assert cancelled.state is C.CANCELLED
            assert cancelled.error.code == COMMAND_CANCELLED
            assert cancelled.error.message == "operator changed their mind"
            assert cancelled.lease_id is None

    def test_terminal_states_are_final(self) -> None:
        done = respond(leased(), ok("lse_a"), now=at(1))
        cancelled = cancel(leased(), now=at(1))
        expired = tick(fresh(), at(300))
        for record, code in (
            (done, COMMAND_FINISHED),
            (cancelled, COMMAND_CANCELLED),
            (expired, COMMAND_EXPIRED),
        ):
            for operation in (
                lambda r: cancel(r, now=at(400)),
                lambda r: lease(r, lease_id="lse_z", now=at(400), ttl=5),
                lambda r: acknowledge(r, lease_id="lse_z", now=at(400), ttl=5),
                lambda r: dispatch(r, lease_id="lse_z", now=at(400), ttl=5),
                lambda r: renew(r, lease_id="lse_a", now=at(400), ttl=5),
                lambda r: respond(r, ok("lse_z"), now=at(400)),
            ):
                with pytest.raises(CommandRefused) as info:
                    operation(record)
                assert info.value.code == code
            assert tick(record, at(10_000)) is record


class TestEnvelope:
    def test_envelope_carries_the_current_lease(self) -> None:
        record = lease(tick(leased("lse_a"), at(30)), lease_id="lse_b", now=at(31), ttl=30)
        envelope = envelope_for(
            record,
            response_url="https://manager.example/v1/commands/cmd_1/response",
            params={"month": "2026-01"},
            traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        assert (envelope.lease_id, envelope.attempt, envelope.lease_expires_at) == (
            "lse_b",
            2,
            at(61),
        )
        assert envelope.command == "generate-report"

    def test_params_by_reference(self) -> None:
        ref = BlobRef(url="https://s3.example/p", size=10, sha256="a" * 64)
        envelope = envelope_for(leased(), response_url="https://m.example/r", params_ref=ref)
        assert envelope.params is None and envelope.params_ref == ref

    def test_only_held_commands_can_be_delivered(self) -> None:
        with pytest.raises(IllegalTransition):
            envelope_for(fresh(), response_url="https://m.example/r", params={})
