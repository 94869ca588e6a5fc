"""The HTTP leg's batches and numbering (``alien.protocol.tunnel_leg``): every lost request or
lost answer, resent, still delivers each message exactly once and in order."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alien.errors import ValidationError
from alien.protocol.tunnel_leg import (
    MAX_BATCH_MESSAGES,
    MAX_MESSAGE,
    Inbox,
    LegBatchError,
    Outbox,
    decode_batch,
    encode_batch,
)

messages = st.lists(st.binary(min_size=1, max_size=64), max_size=40)


@given(messages)
def test_a_batch_decodes_to_what_was_encoded(sent: list[bytes]) -> None:
    assert decode_batch(encode_batch(sent)) == sent


@given(st.binary(max_size=256))
def test_any_body_decodes_or_is_refused_as_a_batch_error(body: bytes) -> None:
    try:
        decoded = decode_batch(body)
    except LegBatchError as exc:
        assert exc.status == 422 and exc.field == "body"
    else:
        assert encode_batch(decoded) == body


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"\x00\x00", "inside a message's length"),
        (struct.pack(">I", 5) + b"abc", "inside a message"),
        (struct.pack(">I", 0), "1 to"),
        (struct.pack(">I", MAX_MESSAGE + 1), "1 to"),
        (encode_batch([b"x"] * (MAX_BATCH_MESSAGES + 1)), "at most"),
    ],
)
def test_malformed_batches_are_refused_with_the_reason(body: bytes, why: str) -> None:
    with pytest.raises(LegBatchError, match=why):
        decode_batch(body)


def test_the_outbox_batches_up_to_the_limit_but_never_nothing() -> None:
    box = Outbox()
    for message in (b"a" * 10, b"b" * 10, b"c" * 100):
        box.put(message)
    assert box.batch(25) == (0, [b"a" * 10, b"b" * 10])
    box.acknowledge(2)
    assert box.batch(25) == (2, [b"c" * 100])  # alone, whatever its size
    assert box.unacknowledged_bytes == 100


def test_acknowledging_more_than_was_sent_is_refused_and_less_changes_nothing() -> None:
    box = Outbox()
    box.put(b"x")
    box.acknowledge(1)
    box.acknowledge(0)  # a late answer to an earlier request
    assert box.sent == 1 and box.batch() == (1, [])
    with pytest.raises(ValidationError, match="only 1 were sent") as refused:
        box.acknowledge(2)
    assert refused.value.field == "ack"


def test_a_batch_past_the_next_expected_message_is_a_gap() -> None:
    inbox = Inbox()
    with pytest.raises(ValidationError) as refused:
        inbox.accept(1, [b"x"])
    assert refused.value.code == "TUNNEL_BATCH_GAP"


@given(
    st.lists(st.binary(min_size=1, max_size=8), min_size=1, max_size=30),
    st.lists(st.sampled_from(["deliver", "lose_request", "lose_answer"]), max_size=200),
    st.integers(min_value=1, max_value=24),
)
def test_lost_requests_and_answers_deliver_each_message_once_in_order(
    sent: list[bytes], fates: list[str], limit: int
) -> None:
    outbox, inbox, delivered = Outbox(), Inbox(), []
    pending = list(sent)
    fates_left = iter(fates)
    while outbox.sent < len(sent) or outbox.batch()[1]:
        while pending and outbox.unacknowledged_bytes < limit:
            outbox.put(pending.pop(0))
        first, batch = outbox.batch(limit)
        fate = next(fates_left, "deliver")
        if fate == "lose_request":
            continue  # the receiver never saw it: sent again with the same numbers
        delivered += inbox.accept(first, batch)
        if fate == "deliver":
            outbox.acknowledge(inbox.received)
    assert delivered == sent
