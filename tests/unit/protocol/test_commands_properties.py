"""Property tests: random operation sequences against the command lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from alien.protocol.commands import (
    COMMAND_CANCELLED,
    COMMAND_EXPIRED,
    COMMAND_FINISHED,
    DUPLICATE_RESPONSE,
    MAX_ATTEMPTS,
    STALE_LEASE,
    TERMINAL_STATES,
    CommandRecord,
    CommandRefused,
    CommandResponse,
    CommandState,
    IllegalTransition,
    acknowledge,
    cancel,
    dispatch,
    lease,
    new_command,
    next_wakeup,
    renew,
    respond,
    tick,
)

C = CommandState
T0 = datetime(2026, 1, 1, tzinfo=UTC)
REFUSAL_CODES = {
    STALE_LEASE,
    DUPLICATE_RESPONSE,
    COMMAND_EXPIRED,
    COMMAND_CANCELLED,
    COMMAND_FINISHED,
}
TERMINAL_CODE = {
    C.EXPIRED: COMMAND_EXPIRED,
    C.CANCELLED: COMMAND_CANCELLED,
    C.SUCCEEDED: COMMAND_FINISHED,
    C.FAILED: COMMAND_FINISHED,
}


class CommandMachine(RuleBasedStateMachine):
    """Drives one command with dispatches, leases, renewals, responses, cancels and time."""

    @initialize(
        max_attempts=st.integers(1, 4),
        deadline=st.integers(10, 400),
    )
    def create(self, max_attempts: int, deadline: int) -> None:
        self.now = T0
        self.record = new_command(
            command_id="cmd_1",
            deployment_id="dep_1",
            command="sync",
            now=T0,
            deadline=T0 + timedelta(seconds=deadline),
            max_attempts=max_attempts,
        )
        self.leases = 0
        self.ended_at: datetime | None = None
        self.terminal_record: CommandRecord | None = None
        self.accepted_responses = 0

    def _new_lease_id(self) -> str:
        self.leases += 1
        return f"lse_{self.leases}"

    def _lease_choice(self, pick_current: bool) -> str:
        if pick_current and self.record.lease_id is not None:
            return self.record.lease_id
        return f"lse_{self.leases + 1000}"  # a lease nobody holds

    def _attempt(self, operation) -> None:
        """Run an operation; refusals must leave the record as it was and name a known code."""
        before = self.record
        try:
            self.record = operation(before)
        except CommandRefused as exc:
            assert exc.code in REFUSAL_CODES
            if tick(before, self.now).terminal and exc.code != DUPLICATE_RESPONSE:
                assert exc.code == TERMINAL_CODE[tick(before, self.now).state]
            # the refusal may have been decided after ticking, but nothing is stored on refusal
            self.record = tick(before, self.now)
        except IllegalTransition:
            self.record = tick(before, self.now)

    @rule(seconds=st.sampled_from([0, 1, 5, 29, 30, 31, 60, 120]))
    def advance(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule()
    def sweep(self) -> None:
        self.record = tick(self.record, self.now)

    @rule(ttl=st.sampled_from([1, 10, 30, 1000]))
    def dispatch(self, ttl: int) -> None:
        lease_id = self._new_lease_id()
        self._attempt(lambda r: dispatch(r, lease_id=lease_id, now=self.now, ttl=ttl))

    @rule(ttl=st.sampled_from([1, 10, 30, 1000]))
    def take_lease(self, ttl: int) -> None:
        lease_id = self._new_lease_id()
        self._attempt(lambda r: lease(r, lease_id=lease_id, now=self.now, ttl=ttl))

    @rule(ttl=st.sampled_from([1, 10, 30, 1000]), current=st.booleans())
    def acknowledge(self, ttl: int, current: bool) -> None:
        lease_id = self._lease_choice(current)
        before = tick(self.record, self.now)
        self._attempt(lambda r: acknowledge(r, lease_id=lease_id, now=self.now, ttl=ttl))
        if self.record.state is C.LEASED and before.state is not C.LEASED:
            assert before.state is C.DISPATCHED and before.lease_id == lease_id

    @rule(ttl=st.sampled_from([1, 10, 30]), current=st.booleans())
    def renew(self, ttl: int, current: bool) -> None:
        lease_id = self._lease_choice(current)
        self._attempt(lambda r: renew(r, lease_id=lease_id, now=self.now, ttl=ttl))

    @rule(ok=st.booleans(), current=st.booleans())
    def respond(self, ok: bool, current: bool) -> None:
        lease_id = self._lease_choice(current)
        if ok:
            response = CommandResponse.success("cmd_1", lease_id, {"n": 1})
        else:
            response = CommandResponse.failure("cmd_1", lease_id, "HANDLER_ERROR", "boom")
        before = self.record
        self._attempt(lambda r: respond(r, response, now=self.now))
        if self.record.response is not None and before.response is None:
            self.accepted_responses += 1
            assert self.record.response == response
            assert self.record.lease_id == lease_id

    @rule()
    def cancel(self) -> None:
        self._attempt(lambda r: cancel(r, now=self.now))

    @invariant()
    def ends_exactly_once_and_terminal_is_absorbing(self) -> None:
        record = self.record
        if self.terminal_record is not None:
            assert record == self.terminal_record
        elif record.terminal:
            self.terminal_record = record
            event(f"ended {record.state.value}")
            assert record.ended_at is not None and record.ended_at <= self.now
        assert (record.ended_at is not None) == (record.state in TERMINAL_STATES)
        assert self.accepted_responses <= 1

    @invariant()
    def consistent(self) -> None:
        record = self.record
        assert 1 <= record.attempt <= record.max_attempts
        if record.state is C.FAILED and record.response is None:
            assert record.error.code == MAX_ATTEMPTS
        if record.state in {C.DISPATCHED, C.LEASED}:
            assert record.lease_expires_at <= record.deadline
        if not record.terminal:
            assert next_wakeup(record) <= record.deadline
        assert CommandRecord.model_validate_json(record.model_dump_json()) == record


TestCommandMachine = CommandMachine.TestCase
TestCommandMachine.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class LeaseLossMachine(RuleBasedStateMachine):
    """Only leases and time: every lost lease is one attempt, never more than max_attempts."""

    @initialize(max_attempts=st.integers(1, 5))
    def create(self, max_attempts: int) -> None:
        self.now = T0
        self.record = new_command(
            command_id="cmd_1",
            deployment_id="dep_1",
            command="sync",
            now=T0,
            deadline=T0 + timedelta(days=1),
            max_attempts=max_attempts,
        )
        self.losses = 0

    @precondition(lambda self: self.record.state is C.PENDING)
    @rule()
    def take(self) -> None:
        self.record = lease(self.record, lease_id=f"lse_{self.losses}", now=self.now, ttl=10)

    @precondition(lambda self: self.record.state is C.LEASED)
    @rule()
    def lose(self) -> None:
        self.now += timedelta(seconds=10)
        self.record = tick(self.record, self.now)
        self.losses += 1

    @rule()
    def sweep(self) -> None:
        assert tick(self.record, self.now) == self.record  # nothing is due between the rules

    @invariant()
    def attempts_count_losses(self) -> None:
        if self.record.state is C.FAILED:
            assert self.losses == self.record.max_attempts
            assert self.record.error.code == MAX_ATTEMPTS
        else:
            assert self.record.attempt == self.losses + 1


TestLeaseLossMachine = LeaseLossMachine.TestCase
TestLeaseLossMachine.settings = settings(max_examples=50, stateful_step_count=15, deadline=None)
